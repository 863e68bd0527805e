import Foundation
public import Hub
public import Logging
public import Net
import Retail
public import SyncEngine
import Terminal

/// A regional hub's link to HQ: a live sync agent on the hub's own replica that pushes the
/// region's changes up and pulls what HQ holds for the region, and wakes the hub's live
/// terminals when something arrived from above.
public final class UpstreamRelay: Sendable {
    private let agent: LiveSyncAgent
    private let watcher: ReplicaChangeWatcher

    public init(replica: Replica, path: String, upstream: SocketAddress, scope: String, server: HubServer, logger: Logger) throws {
        var options = SyncOptions(hub: upstream, scope: scope)
        options.role = .hub
        options.widestTableColumns = RetailSchema.widestTableColumns
        options.pushOnlyLocalWrites = false
        var backoff = LiveSyncAgent.Backoff()
        backoff.retryAfterRefusal = .seconds(300)
        agent = LiveSyncAgent(replica: replica, options: options, backoff: backoff, logger: logger) { event in
            switch event {
            case .connected(let hq):
                do {
                    try replica.setSetting("upstream_replica", .blob(hq.bytes))
                } catch {
                    logger.warning("cannot record the upstream replica", [("error", "\(error)")])
                }
                logger.notice("connected upstream", [("upstream", "\(upstream)")])
            case .synced(let report):
                do {
                    try replica.setSetting("last_sync_ms", .integer(Int64(bitPattern: replica.clock.wallMilliseconds())))
                } catch {
                    logger.warning("cannot record the last sync time", [("error", "\(error)")])
                }
                // What arrived from HQ wakes the terminals it concerns.
                server.announce(latestSequence: replica.latestSequence)
                logger.info("in sync upstream", [("pushed_rows", "\(report.pushedRows)"), ("pulled_rows", "\(report.pulledRows)")])
            case .disconnected(let failure):
                logger.warning("upstream disconnected", [("error", "\(failure)")])
            }
        }
        // Every commit to the hub's file (merges of its terminals, operators' commands) wakes
        // the agent, which pushes what is new.
        let agent = self.agent
        watcher = try ReplicaChangeWatcher(path: path) { agent.localWriteCommitted() }
    }

    public func start() { agent.start() }

    public func stop() {
        watcher.stop()
        agent.stop()
    }
}
