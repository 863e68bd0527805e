import Dispatch
import Foundation
public import Logging
public import Net
public import SyncEngine
import LockBox
import Synchronization
import Wire

/// What every session of a hub shares.
final class HubContext: Sendable {
    struct ReaderSlot: Sendable {
        let reader: ReplicaReader
        let queue: DispatchQueue
    }

    let replica: Replica
    let configuration: HubConfiguration
    let logger: Logger
    let mergeQueue: MergeQueue
    let scopes: any ScopePolicy
    let views: (any ViewProvider)?
    let leases: LeaseBook
    let cursors: PushCursorCache
    /// What sessions hold right now (the bound of DESIGN.md's invariant 7, measured).
    let usage = Mutex(HubResourceUsage())
    /// The live session of each client replica id (a newer one takes over, PROTOCOL.md §7.3).
    let liveByPeer = Mutex<[ReplicaID: HubSession]>([:])
    private let readers: [ReaderSlot]

    init(replica: Replica, configuration: HubConfiguration, scopes: any ScopePolicy, views: (any ViewProvider)?,
         readers: [ReaderSlot], mergeQueue: MergeQueue, leases: LeaseBook, cursors: PushCursorCache, logger: Logger) {
        self.replica = replica
        self.configuration = configuration
        self.scopes = scopes
        self.views = views
        self.readers = readers
        self.mergeQueue = mergeQueue
        self.leases = leases
        self.cursors = cursors
        self.logger = logger
    }

    /// Sessions spread over the readers by id, so one slow pull delays few others.
    func reader(for session: UInt64) -> ReaderSlot {
        readers[Int(session % UInt64(readers.count))]
    }

    /// The hub's latest change sequence, read through a reader (call on its queue).
    func latestSequence(_ reader: ReplicaReader) throws -> UInt64 {
        var latest: UInt64 = 0
        for table in replica.tables { latest = max(latest, try reader.latestSequence(of: table.name)) }
        return latest
    }
}

/// What the hub's sessions hold in memory for their peers, for tests and metrics: the pushes
/// received and not yet acknowledged (a session stops reading beyond its window or byte budget,
/// `HubConfiguration.maxPushesInFlight` / `maxPushBytesInFlight`), and the highest totals seen.
public struct HubResourceUsage: Sendable, Hashable {
    /// PUSHes received and not yet answered, over all sessions.
    public var pushesInFlight = 0
    /// Their estimated bytes in memory.
    public var pushBytesInFlight = 0
    /// The most `pushesInFlight` has been since the hub started.
    public var peakPushesInFlight = 0
    /// The most `pushBytesInFlight` has been since the hub started.
    public var peakPushBytesInFlight = 0
    /// The most pushes one session has had in flight at once.
    public var peakSessionPushesInFlight = 0
    /// The most push bytes one session has had in flight at once.
    public var peakSessionPushBytesInFlight = 0
    /// Times a session stopped reading its socket because of its window or budget.
    public var readPauses = 0
    /// View answers being computed or streamed, over all sessions. Each holds its rows and at
    /// most one encoded chunk beyond `viewStreamLowWaterBytes` queued bytes: the next chunk is
    /// encoded only once the connection drained below that.
    public var viewsInFlight = 0

    public init() {}
}

/// A regional hub (or HQ): accepts terminals over the framed protocol, merges their pushes with
/// one writer in group commits, serves pulls from read-only connections, and notifies live
/// sessions of new changes. It knows nothing of the domain; `CentralRules` plug in.
public final class HubServer: Sendable {
    private let context: HubContext
    private let listener: Listener
    private let sessions = LockBox<[UInt64: HubSession]>([:])
    private let sweeper = LockBox<DispatchTimerHandle?>(nil)
    private let stopped = Mutex(false)
    /// The highest sequence live sessions were told about (by a merge or an announcement).
    private let announced: LockBox<UInt64>
    private let logger: Logger

    /// Binds the listening socket; `start()` begins accepting. `scopes` decides what each peer
    /// may see and push; `rules` run inside every merge; `views` answer VIEW_REQUEST.
    public init(
        replica: Replica, configuration: HubConfiguration, scopes: any ScopePolicy = UnlimitedScopePolicy(),
        rules: (any CentralRules)? = nil, views: (any ViewProvider)? = nil, logger: Logger
    ) throws {
        self.logger = logger
        self.announced = LockBox(replica.latestSequence)
        var readers: [HubContext.ReaderSlot] = []
        for index in 0..<max(1, configuration.readerCount) {
            readers.append(HubContext.ReaderSlot(
                reader: try replica.makeReader(),
                queue: DispatchQueue(label: "storesync.hub.reader.\(index)")))
        }
        let sessions = self.sessions
        let announced = self.announced
        // The hub's own state for handshakes, in memory; persisted through the writer.
        let leases = try LeaseBook(replica: replica)
        let cursors = try PushCursorCache(replica: replica)
        let mergeQueue = MergeQueue(replica: replica, rules: rules, cursors: cursors, logger: logger.child("merge")) { since, latest in
            // Fan the news out to the live sessions whose scope it concerns; each sends at most
            // one NOTIFY until it pulls again.
            announced.withLockedValue { $0 = max($0, latest) }
            let committed = HubServer.committedRows(replica, since: since, latest: latest)
            let live = sessions.withLockedValue { Array($0.values) }
            for session in live { session.liveUpdate(latest: latest, committed: committed) }
        }
        self.context = HubContext(replica: replica, configuration: configuration, scopes: scopes, views: views, readers: readers,
                                  mergeQueue: mergeQueue, leases: leases, cursors: cursors, logger: logger.child("session"))
        self.listener = try Listener(address: configuration.listenAddress, limits: configuration.connectionLimits,
                                     logger: logger.child("net"))
    }

    /// Live updates read a commit back to tell only the sessions it concerns; a bigger commit
    /// (a bulk sync, likely to concern most of them) is announced to every live session.
    static let maxRowsReadForNotify = 256

    /// The rows committed after `since`, up to `latest`; nil when they are too many to read back
    /// cheaply or cannot be read (every live session is then told).
    static func committedRows(_ replica: Replica, since: UInt64, latest: UInt64) -> Changeset? {
        guard latest > since, latest - since <= UInt64(maxRowsReadForNotify),
              let batch = try? replica.nextBatch(since: since, limit: maxRowsReadForNotify),
              !batch.more, batch.changeset.toSequence >= latest else { return nil }
        return batch.changeset
    }

    /// The address actually bound (with the real port when the configuration asked for port 0).
    public var boundAddress: SocketAddress { listener.boundAddress }

    public var sessionCount: Int { sessions.withLockedValue { $0.count } }

    /// What the sessions hold right now, and the peaks since start (see `HubResourceUsage`).
    public var resourceUsage: HubResourceUsage { context.usage.withLock { $0 } }

    /// The lease this hub issued `peer` last, and whether the peer confirmed it (tests, operators).
    public func lease(of peer: ReplicaID) -> (current: [UInt8], confirmed: Bool)? {
        context.leases.record(for: peer).map { ($0.current, $0.previous == nil) }
    }

    /// Tells live sessions that the replica changed outside the hub's own merges (a relay that
    /// pulled from upstream, an operator's command on the hub's file): the commits since the
    /// last announcement are read back like a merge's, so only the sessions whose scope they
    /// concern pull. Call it whenever the file may have changed; an announcement of nothing new
    /// does nothing.
    public func announce(latestSequence: UInt64) {
        let since = announced.withLockedValue { announced -> UInt64? in
            guard latestSequence > announced else { return nil }
            defer { announced = latestSequence }
            return announced
        }
        guard let since else { return }
        let committed = HubServer.committedRows(context.replica, since: since, latest: latestSequence)
        let live = sessions.withLockedValue { Array($0.values) }
        for session in live { session.liveUpdate(latest: latestSequence, committed: committed) }
    }

    public func start() {
        let context = self.context
        let sessions = self.sessions
        let logger = self.logger
        listener.start { connection in
            let session = HubSession(connection: connection, hub: context)
            let admitted = sessions.withLockedValue { table -> Bool in
                guard table.count < context.configuration.maxConnections else { return false }
                table[connection.id] = session
                return true
            }
            guard admitted else {
                logger.warning("connection cap reached; refusing a client", [("cap", "\(context.configuration.maxConnections)")])
                // Kept open past the client's end of stream (onInputEnd), so the ERROR is sent
                // however the client's HELLO and half-close race this refusal (PROTOCOL.md §1).
                connection.start(onMessage: { _ in }, onInputEnd: {}, onClose: { _ in })
                session.fail(.serverBusy, "the hub is at its connection limit", retryAfter: 5_000)
                return
            }
            connection.start(onMessage: { message in
                session.handle(message)
            }, onInputEnd: {
                // A half-close: the client may still read; answer what it asked, then close.
                session.inputEnded()
            }, onClose: { reason in
                session.connectionClosed()
                sessions.withLockedValue { _ = $0.removeValue(forKey: connection.id) }
                logger.debug("connection closed", [("session", "\(connection.id)"), ("reason", "\(reason)")])
            })
        }
        // Handshake timeouts: one timer for all sessions, not one per connection.
        let timeout = context.configuration.handshakeTimeout
        let sweeper = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "storesync.hub.sweeper"))
        sweeper.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        sweeper.setEventHandler {
            let now = ContinuousClock.now
            let late = sessions.withLockedValue { table in
                table.values.filter { ($0.phase == .awaitingHello || $0.phase == .handshaking) && now - $0.openedAt > timeout }
            }
            for session in late {
                logger.info("handshake timeout", [("session", "\(session.connection.id)")])
                session.close()
            }
        }
        self.sweeper.withLockedValue { $0 = DispatchTimerHandle(sweeper) }
        sweeper.resume()
        logger.notice("hub listening", [("address", "\(listener.boundAddress)"), ("replica", "\(context.replica.id)")])
    }

    /// Drains and stops: no new connections, every accepted push answered, sessions closed.
    public func stop() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        listener.close()
        sweeper.withLockedValue { $0?.timer.cancel() }
        context.mergeQueue.stop()
        let open = sessions.withLockedValue { Array($0.values) }
        for session in open { session.close() }
        logger.notice("hub stopped", [("sessions_closed", "\(open.count)")])
    }
}

/// A dispatch timer that may be cancelled from any thread.
///
/// `@unchecked Sendable` is true: a dispatch source synchronises its own state (libdispatch's
/// `resume`, `cancel` and `schedule` are thread-safe); Linux's Dispatch overlay only lacks the
/// annotation.
struct DispatchTimerHandle: @unchecked Sendable {
    let timer: any DispatchSourceTimer

    init(_ timer: any DispatchSourceTimer) {
        self.timer = timer
    }
}
