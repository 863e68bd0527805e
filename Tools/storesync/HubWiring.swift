import Foundation
import Hub
import Logging
import Net
import Retail
import SyncEngine
import Terminal
import Wire

/// The retail deployment's scopes, as a hub enforces them: a terminal sees its store, a regional
/// hub its region, and a hub serves only what lies inside its own scope.
struct RetailScopePolicy: ScopePolicy {
    let own: NodeScope
    let directory: StoreDirectory

    func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope {
        if scope == ReportScope.name {
            guard role != .terminal else { throw ScopeRefusal("a terminal may not ask for scope \(scope)") }
            return NoRows()
        }
        guard let requested = NodeScope(scope) else {
            throw ScopeRefusal("scope \(scope) is not store:ID, region:ID or all")
        }
        switch (role, requested) {
        case (.terminal, .store), (.hub, .region):
            break
        default:
            throw ScopeRefusal("a \(role) may not ask for scope \(requested)")
        }
        if let reason = own.refusal(toServe: requested, regions: try directory.regions()) {
            throw ScopeRefusal(reason)
        }
        return RetailRowScope(scope: requested, directory: directory)
    }

    /// Views span the whole hub: only an analyst's report session may ask for them.
    func allowsViews(role: Role, scope: String) -> Bool {
        role != .terminal && scope == ReportScope.name
    }
}

/// An analyst's report session exchanges no rows: it only asks for views.
private struct NoRows: RowScope {
    func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool { false }
}

/// The consolidated views a hub serves over the protocol, read through their own connection.
struct RetailViewProvider: ViewProvider {
    let reader: ReplicaReader
    let clock: HybridLogicalClock

    func answer(view: String, parameters: [(name: String, value: String)]) throws -> (columns: [String], rows: [[Value]]) {
        let query: ReportQuery
        do {
            query = try ReportQuery(view: view, parameters: parameters)
        } catch {
            throw ViewRefusal("\(error)")
        }
        let now = Int64(bitPattern: clock.wallMilliseconds())
        let table = try RetailViews.run(query, from: reader, nowMilliseconds: now)
        return (table.columns, table.rows)
    }
}

/// A regional hub's link to HQ: a live sync agent on the hub's own replica that pushes the
/// region's changes up and pulls what HQ holds for the region, and wakes the hub's live
/// terminals when something arrived from above.
final class UpstreamRelay: Sendable {
    private let agent: LiveSyncAgent
    private let watcher: ReplicaChangeWatcher

    init(replica: Replica, path: String, upstream: SocketAddress, scope: String, server: HubServer, logger: Logger) throws {
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

    func start() { agent.start() }

    func stop() {
        watcher.stop()
        agent.stop()
    }
}
