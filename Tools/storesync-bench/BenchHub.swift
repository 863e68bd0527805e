import Hub
import Logging
import Net
import Retail
import SyncEngine

/// A hub served in this process on 127.0.0.1:0, as `storesync hub` serves one (retail schema,
/// the CLI's defaults), with the scopes it grants and the central rules it runs given by the
/// caller.
struct BenchHub {
    let replica: Replica
    let server: HubServer

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
        server.start()
    }

    var address: SocketAddress { server.boundAddress }

    func stop() { server.stop() }
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
