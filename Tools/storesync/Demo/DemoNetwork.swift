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
    private(set) var hqNode: RetailHubNode?
    private(set) var regional: [String: (replica: Replica, node: RetailHubNode)] = [:]
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
        let hqNode = try serve(hq, scope: .all, upstream: nil, label: "hub")
        self.hqNode = hqNode
        let regions = Array(Set(stores.map(\.region))).sorted()
        for region in regions {
            let path = directory.appendingPathComponent("\(region).sqlite").path
            let replica = try Self.makeReplica(path, kind: .hub, scope: "region:\(region)", clock: clock)
            regional[region] = (replica, try serve(replica, scope: .region(region), upstream: hqNode.boundAddress, label: "hub.\(region)"))
        }
        try waitUntil("every regional hub holds its stores", timeout: 30) {
            try regions.allSatisfy { region in
                let expected = Set(stores.filter { $0.region == region }.map(\.id))
                return try self.storeIDs(in: self.regional[region]?.replica) == expected
            }
        }
        for store in stores {
            guard let hub = regional[store.region]?.node.boundAddress else { continue }
            for index in 1...terminalsPerStore {
                let name = "\(store.id)-t\(index)"
                let path = directory.appendingPathComponent("\(name).sqlite").path
                terminals.append(TerminalNode(name: name, store: store,
                                              replica: try Self.makeReplica(path, kind: .terminal, scope: "store:\(store.id)", clock: clock),
                                              hub: hub))
            }
        }
    }

    /// A hub as `storesync hub` runs one (`RetailHubNode`), relaying to `upstream` if given.
    private func serve(_ replica: Replica, scope: NodeScope, upstream: SocketAddress?, label: String) throws -> RetailHubNode {
        var options = RetailHubNode.Options(configuration: HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0")))
        options.upstream = upstream
        let node = try RetailHubNode(replica: replica, scope: scope, options: options, logger: logger.child(label))
        node.start()
        return node
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
        for (_, hub) in regional { hub.node.stop() }
        hqNode?.stop()
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
