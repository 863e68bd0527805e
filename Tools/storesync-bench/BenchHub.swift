import Hub
import Logging
import Net
import Retail
import RetailHub
import SyncEngine
import Terminal

/// A hub served in this process on 127.0.0.1:0, as `storesync hub` serves one (retail schema,
/// the CLI's defaults), with the scopes it grants and the central rules it runs given by the
/// caller.
struct BenchHub {
    let replica: Replica
    let server: HubServer
    /// The retail hub as `storesync hub` assembles it, when the benchmark runs one.
    private let node: RetailHubNode?

    init(path: String, durable: Bool, scope: BenchScope = .all, rules: BenchRules, before: (Replica) throws -> Void = { _ in }) throws {
        let replica = try Replica(path: path, schema: RetailSchema.all, options: .bench(durable: durable))
        try before(replica)
        try self.init(replica: replica, policy: scope.policy, rules: rules)
    }

    /// Serves `replica` (already holding whatever the hub must know before it starts).
    init(replica: Replica, policy: any ScopePolicy, rules: BenchRules, label: String = "bench.hub") throws {
        self.replica = replica
        var configuration = HubConfiguration(listenAddress: SocketAddress(host: "127.0.0.1", port: 0))
        configuration.widestTableColumns = RetailSchema.widestTableColumns
        server = try HubServer(replica: replica, configuration: configuration, scopes: policy, rules: try rules.make(for: replica),
                               logger: Logger(label: label, minimumLevel: .warning))
        node = nil
        server.start()
    }

    /// A retail hub of scope `scope` on 127.0.0.1:0 assembled as `storesync hub` assembles one
    /// (`RetailHubNode`: retail scopes, the rules if `rules` is `.retail`, views, and the relay
    /// to `upstream` if given, whose events go to `relayEvents`).
    init(retail replica: Replica, scope: NodeScope, rules: BenchRules, upstream: SocketAddress? = nil, label: String,
         relayEvents: @escaping @Sendable (LiveSyncAgent.Event) -> Void = { _ in }) throws {
        self.replica = replica
        var options = RetailHubNode.Options(configuration: HubConfiguration(listenAddress: SocketAddress(host: "127.0.0.1", port: 0)))
        options.runsRules = rules == .retail
        options.upstream = upstream
        let node = try RetailHubNode(replica: replica, scope: scope, options: options,
                                     logger: Logger(label: label, minimumLevel: .warning), relayEvents: relayEvents)
        node.start()
        self.node = node
        server = node.server
    }

    var address: SocketAddress { server.boundAddress }

    func stop() {
        if let node { node.stop() } else { server.stop() }
    }
}

extension ReplicaOptions {
    /// `synchronous=FULL` (every commit waits for the disk: the default of every replica the
    /// CLI opens) or `NORMAL` (WAL commits without fsync; durable across a process crash only).
    static func bench(durable: Bool) -> ReplicaOptions {
        var options = ReplicaOptions()
        options.synchronous = durable ? .full : .normal
        return options
    }
}
