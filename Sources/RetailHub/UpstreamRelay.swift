import Foundation
public import Hub
public import Logging
public import Net
import Retail
public import SyncEngine
public import Terminal

/// A regional hub's link to HQ: a live sync agent on the hub's own replica that pushes the
/// region's changes up and pulls what HQ holds for the region, and wakes the hub's live
/// terminals when something arrived from above.
public final class UpstreamRelay: Sendable {
    private let agent: LiveSyncAgent
    private let watcher: ReplicaChangeWatcher

    /// The relay of `replica` (a regional hub's file, served by `server`) to HQ at `upstream`,
    /// asking for `scope` (`region:R`). `backoff` paces reconnections (every failure backs off;
    /// a refusal retries after `retryAfterRefusal`, 5 minutes unless told otherwise);
    /// `onEvent` sees the agent's events after the relay handled them (benchmarks count them).
    public init(replica: Replica, upstream: SocketAddress, scope: String, server: HubServer,
                backoff: LiveSyncAgent.Backoff = UpstreamRelay.defaultBackoff, logger: Logger,
                onEvent: @escaping @Sendable (LiveSyncAgent.Event) -> Void = { _ in }) throws {
        var options = SyncOptions(hub: upstream, scope: scope)
        options.role = .hub
        options.widestTableColumns = RetailSchema.widestTableColumns
        options.pushOnlyLocalWrites = false
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
            case .backingOff(let wait):
                logger.info("reconnecting upstream later", [("in_ms", "\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)")])
            }
            onEvent(event)
        }
        // Every commit to the hub's file (merges of its terminals, operators' commands) wakes
        // the agent, which pushes what is new.
        let agent = self.agent
        watcher = try ReplicaChangeWatcher(path: replica.path) { agent.localWriteCommitted() }
    }

    /// Exponential backoff with jitter up to 30 s; after a refusal, a retry every 5 minutes.
    public static var defaultBackoff: LiveSyncAgent.Backoff {
        var backoff = LiveSyncAgent.Backoff()
        backoff.retryAfterRefusal = .seconds(300)
        return backoff
    }

    public func start() { agent.start() }

    public func stop() {
        watcher.stop()
        agent.stop()
    }
}
