import Foundation
import Hub
import Logging
import Net
import Retail
import RetailHub
import SyncEngine
import Terminal

/// The demo's chain on loopback, all in this process: HQ, one regional hub per region relaying
/// to it, and terminals that sync with their region's hub whenever they are online.
final class DemoNetwork {
    struct Store {
        var id: String
        var name: String
        var region: String
        var latitude: Double
        var longitude: Double
    }

    struct TerminalNode {
        var name: String
        var store: Store
        var replica: Replica
        var hub: SocketAddress
    }

    let directory: URL
    let hq: Replica
    private(set) var hqServer: HubServer?
    private(set) var regional: [String: (replica: Replica, server: HubServer, relay: UpstreamRelay)] = [:]
    private(set) var terminals: [TerminalNode] = []
    private let logger: Logger

    let clock: DemoClock

    init(directory: URL, clock: DemoClock, logger: Logger) throws {
        self.directory = directory
        self.clock = clock
        self.logger = logger
        hq = try Self.makeReplica(directory.appendingPathComponent("hq.sqlite").path, kind: .hq, scope: "all", clock: clock)
    }

    private static func makeReplica(_ path: String, kind: NodeSettings.Kind, scope: String, clock: DemoClock) throws -> Replica {
        var options = ReplicaOptions()
        options.wallClock = clock.wallClock
        let replica = try Replica(path: path, schema: RetailSchema.all, options: options)
        try NodeSettings(kind: kind, scope: scope).write(replica)
        return replica
    }

    /// Starts HQ, then each region's hub with its relay, and waits until every regional hub has
    /// received its stores from HQ (terminals of an unregistered store are refused).
    func start(stores: [Store], terminalsPerStore: Int) throws {
        let hqServer = try serve(hq, scope: .all)
        self.hqServer = hqServer
        let regions = Array(Set(stores.map(\.region))).sorted()
        for region in regions {
            let path = directory.appendingPathComponent("\(region).sqlite").path
            let replica = try Self.makeReplica(path, kind: .hub, scope: "region:\(region)", clock: clock)
            let server = try serve(replica, scope: .region(region))
            let relay = try UpstreamRelay(replica: replica, path: path, upstream: hqServer.boundAddress,
                                          scope: "region:\(region)", server: server, logger: logger.child("relay.\(region)"))
            relay.start()
            regional[region] = (replica, server, relay)
        }
        try waitUntil("every regional hub holds its stores", timeout: 30) {
            try regions.allSatisfy { region in
                let expected = Set(stores.filter { $0.region == region }.map(\.id))
                return try self.storeIDs(in: self.regional[region]?.replica) == expected
            }
        }
        for store in stores {
            guard let hub = regional[store.region]?.server.boundAddress else { continue }
            for index in 1...terminalsPerStore {
                let name = "\(store.id)-t\(index)"
                let path = directory.appendingPathComponent("\(name).sqlite").path
                terminals.append(TerminalNode(name: name, store: store,
                                              replica: try Self.makeReplica(path, kind: .terminal, scope: "store:\(store.id)", clock: clock),
                                              hub: hub))
            }
        }
    }

    private func serve(_ replica: Replica, scope: NodeScope) throws -> HubServer {
        var configuration = HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0"))
        configuration.widestTableColumns = RetailSchema.widestTableColumns
        let server = try HubServer(
            replica: replica, configuration: configuration,
            scopes: RetailScopePolicy(own: scope, directory: StoreDirectory(reader: try replica.makeReader())),
            rules: try RetailHubRules(replica: replica, logger: logger.child("rules")), views: RetailViewProvider(reader: try replica.makeReader(), clock: replica.clock),
            logger: logger.child("hub"))
        server.start()
        return server
    }

    private func storeIDs(in replica: Replica?) throws -> Set<String> {
        guard let replica else { return [] }
        return Set(try replica.read { database in try database.fetchAll("SELECT id FROM stores").compactMap { $0[0].textValue } })
    }

    var regionalReplicas: [Replica] { regional.keys.sorted().compactMap { regional[$0]?.replica } }

    /// One push-and-pull of a terminal with its regional hub.
    func sync(_ terminal: TerminalNode) throws -> SyncReport {
        var options = SyncOptions(hub: terminal.hub, scope: "store:\(terminal.store.id)")
        options.widestTableColumns = RetailSchema.widestTableColumns
        return try SyncClient(replica: terminal.replica, options: options, logger: logger.child("terminal")).syncOnce()
    }

    func stop() {
        for (_, node) in regional {
            node.relay.stop()
            node.server.stop()
        }
        hqServer?.stop()
    }
}

/// Polls `condition` until it holds or `timeout` seconds pass; the demo waits on facts, not time.
func waitUntil(_ what: String, timeout: TimeInterval, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(10_000)
    }
    throw CommandError("gave up after \(Int(timeout)) s waiting until \(what)")
}
