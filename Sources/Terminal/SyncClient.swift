import Foundation
public import Logging
public import SyncEngine
import Synchronization
import Wire

/// Syncs a replica with its hub once: pushes everything unacknowledged, pulls everything new.
public struct SyncClient: Sendable {
    public let replica: Replica
    public let options: SyncOptions
    public let logger: Logger

    public init(replica: Replica, options: SyncOptions, logger: Logger) {
        self.replica = replica
        self.options = options
        self.logger = logger
    }

    /// One sync. A clock-skew refusal corrects our clock and is retried once at once.
    public func syncOnce() throws(SyncFailure) -> SyncReport {
        do {
            return try SyncSession(replica: replica, options: options, inbox: EventInbox(), logger: logger).run(live: false)
        } catch let failure where failure.code == .clockSkew {
            logger.notice("retrying after correcting the clock")
            return try SyncSession(replica: replica, options: options, inbox: EventInbox(), logger: logger).run(live: false)
        }
    }
}

/// Keeps a replica in sync while it runs: stays connected, pushes each local write as it
/// commits, pulls what the hub announces, and reconnects with exponential backoff and jitter
/// when the link drops. One thread per agent, which waits on events, never polls the socket.
public final class LiveSyncAgent: Sendable {
    public enum Event: Sendable {
        case connected(hub: ReplicaID)
        case synced(SyncReport)
        case disconnected(SyncFailure)
        /// The agent waits this long before connecting again (after `disconnected`).
        case backingOff(Duration)
    }

    /// How long the agent waits between sessions that failed. Every failure counts, whatever
    /// it was (connect refused, timeout, a dropped link, SERVER_BUSY, INTERNAL, a local disk
    /// full or database busy): the wait doubles from `initial` after each failed session up to
    /// `maximum` (the ceiling, 30 s by default), with jitter, and is never shorter than the
    /// hub's `retry_after_ms`. Only a session that got in sync (pushed and pulled everything)
    /// resets it: a handshake alone does not, or a hub (or a local disk) that fails every
    /// session right after HELLO would be hammered about 20 times a second.
    public struct Backoff: Sendable {
        public var initial: Duration = .milliseconds(100)
        /// The ceiling of the wait (before the hub's retry_after_ms, which may exceed it).
        public var maximum: Duration = .seconds(30)
        /// After a refusal that needs a person (OUT_OF_SCOPE, UNAUTHORISED, …): nil stops the
        /// agent (a terminal's `sync --live`); a duration retries that often (a hub's relay to
        /// HQ, which must resume by itself once the operator fixed the cause).
        public var retryAfterRefusal: Duration?
        /// The jittered wait for an exponential bound (seconds in, seconds out). By default a
        /// uniform draw in [bound/2, bound] ("equal jitter"): spread, so a hub restart does not
        /// get every terminal back in the same millisecond, yet never much below the bound, so
        /// the waits of a failing link do grow. Tests pass `{ $0 }` to see the bounds.
        public var jitter: @Sendable (Double) -> Double = { bound in Double.random(in: (bound / 2)...max(bound / 2, bound)) }
        public init() {}

        /// The exponential bound after `attempt` failed sessions in a row (0: the first).
        public func bound(attempt: Int) -> Duration {
            let bound = min(seconds(maximum), seconds(initial) * pow(2, Double(min(max(0, attempt), 30))))
            return .nanoseconds(Int64(bound * 1e9))
        }

        /// The wait after `attempt` failed sessions in a row and `failure`: the jittered bound,
        /// `retryAfterRefusal` after a permanent refusal, and at least the hub's retry_after_ms.
        public func delay(attempt: Int, after failure: SyncFailure) -> Duration {
            var wait = Duration.nanoseconds(Int64(min(seconds(maximum), max(0, jitter(seconds(bound(attempt: attempt))))) * 1e9))
            if failure.isPermanent, let retry = retryAfterRefusal { wait = retry }
            if let retry = failure.retryAfterMilliseconds { wait = max(wait, .milliseconds(Int(retry))) }
            return wait
        }
    }

    private let replica: Replica
    private let options: SyncOptions
    private let logger: Logger
    private let backoff: Backoff
    private let inbox = EventInbox()
    private let onEvent: @Sendable (Event) -> Void
    private let running = Mutex(false)
    private let finished = DispatchSemaphore(value: 0)

    public init(replica: Replica, options: SyncOptions, backoff: Backoff = Backoff(), logger: Logger,
                onEvent: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.replica = replica
        self.options = options
        self.backoff = backoff
        self.logger = logger
        self.onEvent = onEvent
    }

    public func start() {
        let first = running.withLock { running -> Bool in
            defer { running = true }
            return !running
        }
        guard first else { return }
        let thread = Thread { [self] in
            self.loop()
            self.finished.signal()
        }
        thread.name = "storesync.live-sync"
        thread.start()
    }

    /// A local write committed: push it now rather than at the next poll.
    public func localWriteCommitted() {
        inbox.post(.localWrite)
    }

    /// Ends the session and waits for the agent's thread to finish.
    public func stop() {
        let wasRunning = running.withLock { running -> Bool in
            defer { running = false }
            return running
        }
        guard wasRunning else { return }
        inbox.post(.stop)
        finished.wait()
    }

    private func loop() {
        var attempt = 0
        while true {
            let session = SyncSession(replica: replica, options: options, inbox: inbox, logger: logger)
            session.onReady = { [onEvent] hub in onEvent(.connected(hub: hub)) }
            session.onSynced = { [onEvent] report in
                // Only a session that did its job resets the backoff (see `Backoff`).
                attempt = 0
                onEvent(.synced(report))
            }
            do {
                _ = try session.run(live: true)
                return
            } catch let failure {
                onEvent(.disconnected(failure))
                if failure.kind == .local && failure.message == "stopped" { return }
                if failure.isPermanent {
                    guard backoff.retryAfterRefusal != nil else {
                        logger.error("the hub refused this replica; not retrying", [("error", "\(failure)")])
                        return
                    }
                    logger.error("the hub refused this replica; retrying later", [("error", "\(failure)")])
                }
                let wait = backoff.delay(attempt: attempt, after: failure)
                attempt += 1
                onEvent(.backingOff(wait))
                logger.info("sync session ended; reconnecting", [("error", "\(failure)"), ("in_ms", "\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)")])
                inbox.reset()
                // The wait ends early on stop; local writes during it are pushed after reconnecting.
                let deadline = Date().addingTimeInterval(seconds(wait))
                while let event = inbox.next(before: deadline) {
                    if case .stop = event { return }
                }
            }
        }
    }
}
