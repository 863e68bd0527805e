import Hub
import Logging
import Net
import Retail
import SyncEngine

/// A hub served in this process on 127.0.0.1:0, as `storesync hub` serves one (retail schema,
/// the CLI's defaults), with the scopes it grants and the central rules it runs given by the
/// caller: rules are nil today, the retail rules once a `--rules` flag plugs them in.
struct BenchHub {
    let replica: Replica
    let server: HubServer

    init(path: String, durable: Bool, scope: BenchScope = .all, rules: (any CentralRules)?) throws {
        replica = try Replica(path: path, schema: RetailSchema.all, options: .bench(durable: durable))
        var configuration = HubConfiguration(listenAddress: SocketAddress(host: "127.0.0.1", port: 0))
        configuration.widestTableColumns = RetailSchema.widestTableColumns
        server = try HubServer(replica: replica, configuration: configuration, scopes: scope.policy, rules: rules,
                               logger: Logger(label: "bench.hub", minimumLevel: .warning))
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
