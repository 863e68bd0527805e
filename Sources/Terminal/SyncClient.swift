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
    }

    public struct Backoff: Sendable {
        public var initial: Duration = .milliseconds(100)
        public var maximum: Duration = .seconds(30)
        /// After a refusal that needs a person (OUT_OF_SCOPE, UNAUTHORISED, …): nil stops the
        /// agent (a terminal's `sync --live`); a duration retries that often (a hub's relay to
        /// HQ, which must resume by itself once the operator fixed the cause).
        public var retryAfterRefusal: Duration?
        public init() {}

        /// Full jitter: a random wait up to the exponential bound, so a hub restart does not
        /// get every terminal back in the same millisecond.
        func delay(attempt: Int) -> Duration {
            let bound = min(seconds(maximum), seconds(initial) * pow(2, Double(min(attempt, 30))))
            return .milliseconds(Int(Double.random(in: 0...bound) * 1000))
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
            session.onReady = { [onEvent] hub in
                attempt = 0
                onEvent(.connected(hub: hub))
            }
            session.onSynced = { [onEvent] report in onEvent(.synced(report)) }
            do {
                _ = try session.run(live: true)
                return
            } catch let failure {
                onEvent(.disconnected(failure))
                if failure.kind == .local && failure.message == "stopped" { return }
                var wait = backoff.delay(attempt: attempt)
                if failure.isPermanent {
                    guard let retry = backoff.retryAfterRefusal else {
                        logger.error("the hub refused this replica; not retrying", [("error", "\(failure)")])
                        return
                    }
                    logger.error("the hub refused this replica; retrying later", [("error", "\(failure)")])
                    wait = retry
                }
                if let retry = failure.retryAfterMilliseconds { wait = max(wait, .milliseconds(Int(retry))) }
                attempt += 1
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
