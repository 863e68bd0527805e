public import Hub
public import Logging
public import Net
import Retail
public import SyncEngine
public import Terminal

/// A retail hub (HQ or a regional hub) as `storesync hub` runs it, assembled in this one place
/// for the CLI, the demo and the benchmarks: the replica served with the retail scopes
/// (`RetailScopePolicy` over the stores it knows), pushed rows checked against the application
/// schema (`RetailPushValidator`, INVALID_VALUE), the central rules (`RetailHubRules`), the
/// consolidated views (`RetailViewProvider`), the relay to HQ when it has an upstream
/// (`UpstreamRelay`), and a watcher that announces reference data written into the file by
/// other processes (an operator's `storesync store add`) to the live sessions it concerns.
public final class RetailHubNode: Sendable {
    public struct Options: Sendable {
        /// Where and how it serves; `widestTableColumns` is set to the retail schema's.
        public var configuration: HubConfiguration
        /// HQ's address, for a regional hub that relays its region up.
        public var upstream: SocketAddress?
        /// Runs the central rules after each merge (every deployed hub does; benchmarks compare).
        public var runsRules = true
        /// Announces commits by other processes to live sessions (what `storesync hub` does;
        /// needless when nothing else writes the file).
        public var watchesOtherWriters = true
        /// How the relay waits between failed sessions with HQ; it retries after a refusal
        /// every 5 minutes unless told otherwise.
        public var relayBackoff = UpstreamRelay.defaultBackoff

        public init(configuration: HubConfiguration) {
            self.configuration = configuration
        }
    }

    public let replica: Replica
    public let server: HubServer
    public let relay: UpstreamRelay?
    private let otherWriters: ReplicaChangeWatcher?

    /// Assembles the hub of `replica`, whose own scope is `scope` (`all` at HQ, `region:R`
    /// below); nothing is served before `start()`. `relayEvents` sees the relay's agent events.
    public init(replica: Replica, scope: NodeScope, options: Options, logger: Logger,
                relayEvents: @escaping @Sendable (LiveSyncAgent.Event) -> Void = { _ in }) throws {
        self.replica = replica
        var configuration = options.configuration
        configuration.widestTableColumns = RetailSchema.widestTableColumns
        // Every pushed row is checked against the application schema before its batch merges.
        configuration.pushValidator = RetailPushValidator()
        let scopes = RetailScopePolicy(own: scope, directory: StoreDirectory(reader: try replica.makeReader()))
        let views = RetailViewProvider(reader: try replica.makeReader(), clock: replica.clock)
        let rules = options.runsRules ? try RetailHubRules(replica: replica, logger: logger.child("rules")) : nil
        let server = try HubServer(replica: replica, configuration: configuration, scopes: scopes, rules: rules, views: views,
                                   logger: logger)
        self.server = server
        relay = try options.upstream.map { upstream in
            try UpstreamRelay(replica: replica, upstream: upstream, scope: scope.description, server: server,
                              backoff: options.relayBackoff, logger: logger.child("upstream"), onEvent: relayEvents)
        }
        otherWriters = options.watchesOtherWriters
            ? try ReplicaChangeWatcher(path: replica.path) { server.announce(latestSequence: replica.latestSequence) }
            : nil
    }

    public var boundAddress: SocketAddress { server.boundAddress }

    public func start() {
        server.start()
        relay?.start()
    }

    /// Stops the watcher, the relay, then the server (which lets the merge in progress commit).
    public func stop() {
        otherWriters?.stop()
        relay?.stop()
        server.stop()
    }
}
