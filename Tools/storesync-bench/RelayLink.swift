import Hub
import Logging
import Net
import Retail
import Synchronization
import SyncEngine
import Terminal

/// A regional hub's link to HQ wired as `storesync hub --upstream` wires it (`RetailHub`'s
/// `UpstreamRelay`, which logs what this counts), with the same calls in the same places: a `LiveSyncAgent` on the hub's replica (role hub, the region's scope, pushing
/// every row HQ did not write alone), woken by a `ReplicaChangeWatcher` on the replica file at
/// each commit; the agent records the upstream and the last sync in the replica's settings and
/// wakes the hub's live sessions when rows came down. It counts its disconnections and
/// the rows it moved instead of logging them.
final class RelayLink: Sendable {
    private let agent: LiveSyncAgent
    private let watcher: ReplicaChangeWatcher
    private let tally = Tally()

    /// What the link did, from its agent's events.
    struct Counts {
        var disconnections = 0
        /// Rows pushed to HQ and pulled from it in the current session (as its last report says).
        var pushedRows = 0
        var pulledRows = 0
    }

    private final class Tally: Sendable {
        private let counts = Mutex(Counts())
        func disconnected() { counts.withLock { $0.disconnections += 1 } }
        func synced(_ report: SyncReport) {
            counts.withLock {
                $0.pushedRows = report.pushedRows
                $0.pulledRows = report.pulledRows
            }
        }
        var current: Counts { counts.withLock { $0 } }
    }

    init(replica: Replica, upstream: SocketAddress, scope: String, server: HubServer) throws {
        var options = SyncOptions(hub: upstream, scope: scope)
        options.role = .hub
        options.widestTableColumns = RetailSchema.widestTableColumns
        options.pushOnlyLocalWrites = false
        let tally = self.tally
        var backoff = LiveSyncAgent.Backoff()
        backoff.retryAfterRefusal = .seconds(300)
        agent = LiveSyncAgent(replica: replica, options: options, backoff: backoff, logger: Logger.discarding) { event in
            switch event {
            case .connected(let hq):
                try? replica.setSetting("upstream_replica", .blob(hq.bytes))
            case .synced(let report):
                tally.synced(report)
                try? replica.setSetting("last_sync_ms", .integer(Int64(bitPattern: replica.clock.wallMilliseconds())))
                server.announce(latestSequence: replica.latestSequence)
            case .disconnected:
                tally.disconnected()
            }
        }
        let agent = self.agent
        watcher = try ReplicaChangeWatcher(path: replica.path) { agent.localWriteCommitted() }
    }

    /// Disconnections (each followed by a reconnection with backoff) and rows moved so far.
    var counts: Counts { tally.current }

    func start() { agent.start() }

    func stop() {
        watcher.stop()
        agent.stop()
    }
}
