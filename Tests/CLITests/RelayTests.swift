import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// Terminals → regional hubs → HQ, every node the real `storesync` binary on loopback.
final class RelayTests: CLITestCase {
    private static let regionOfStore = ["N1": "north", "N2": "north", "S1": "south", "S2": "south"]
    private func column(_ name: String) throws -> ColumnName { try ColumnName(name) }

    private func keys(_ file: String, _ table: String) throws -> Set<String> {
        Set(try query(file, "SELECT id FROM \(table)").compactMap { $0[0].textValue })
    }


    /// HQ with four stores in two regions and one threshold set at HQ, served by a hub process.
    private func startHQ() throws -> HubProcess {
        try storesync(["init", "--db", path("hq.sqlite"), "--hq"])
        let hq = try Replica(path: path("hq.sqlite"), schema: RetailSchema.all)
        try hq.write { tx in
            for (store, region) in Self.regionOfStore.sorted(by: { $0.key < $1.key }) {
                try tx.insert(into: RetailSchema.stores.name, primaryKey: store, [
                    try column("name"): .text("Store \(store)"), try column("region"): .text(region),
                    try column("latitude"): .real(region == "north" ? 40 : 22), try column("longitude"): .real(116),
                ])
            }
            try tx.insert(into: RetailSchema.thresholds.name, primaryKey: "N1/K1", [
                try column("store"): .text("N1"), try column("sku"): .text("K1"), try column("min_quantity"): .integer(5),
            ])
        }
        return try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hq.log"))
    }

    private func startRegion(_ region: String, upstream: String) throws -> HubProcess {
        if !FileManager.default.fileExists(atPath: path("\(region).sqlite")) {
            try storesync(["init", "--db", path("\(region).sqlite"), "--hub", "--region", region])
        }
        return try HubProcess(["--db", path("\(region).sqlite"), "--listen", "127.0.0.1:0", "--upstream", upstream],
                              logURL: directory.appendingPathComponent("\(region).log"))
    }

    private func waitForStores(_ region: String) throws {
        let expected = Set(Self.regionOfStore.filter { $0.value == region }.map(\.key))
        try waitUntil("\(region) holds its stores") { try keys("\(region).sqlite", "stores") == expected }
    }

    /// Random guide activity on a terminal file (no process has it open meanwhile): new leads,
    /// edits of the store's leads, visits and sales. Returns the keys of new rows by table.
    private func work(_ file: String, store: String, steps: Int, random: inout SplitMix64) throws -> [String: [String]] {
        let replica = try Replica(path: path(file), schema: RetailSchema.all)
        var created: [String: [String]] = [:]
        let leads = try keys(file, "leads").sorted()
        for step in 0..<steps {
            let key = UniqueID.make()
            switch Int.random(in: 0..<4, using: &random) {
            case 0:
                let score = Int64.random(in: 0...100, using: &random)
                _ = try replica.write { tx in
                    try ValidRows.lead(tx, store: store, key: key, ["score": .integer(score)])
                }
                created["leads", default: []].append(key)
            case 1 where !leads.isEmpty:
                let lead = leads[Int.random(in: 0..<leads.count, using: &random)]
                try replica.write { tx in
                    try tx.update(RetailSchema.leads.name, primaryKey: lead, set: [try column("score"): .integer(Int64(step))])
                }
            case 2:
                _ = try replica.write { tx in
                    try ValidRows.visit(tx, store: store, key: key, ["duration_min": .integer(Int64(step % 40))])
                }
                created["visits", default: []].append(key)
            default:
                _ = try replica.write { tx in
                    try ValidRows.sale(tx, store: store, sku: "K1", amountCents: Int64(100 + step), key: key)
                }
                created["sales", default: []].append(key)
            }
        }
        return created
    }

    func testThreeLevelsConvergeEachNodeHoldingItsScope() throws {
        let seed = ProcessInfo.processInfo.environment["STORESYNC_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        print("RelayTests seed \(seed) (replay with STORESYNC_SEED=\(seed))")
        var random = SplitMix64(seed: seed)
        let hq = try startHQ()
        let north = try startRegion("north", upstream: hq.address)
        let south = try startRegion("south", upstream: hq.address)
        let hubOfRegion = ["north": north, "south": south]
        try waitForStores("north")
        try waitForStores("south")

        // Two terminals per store.
        var terminals: [(file: String, store: String)] = []
        for store in Self.regionOfStore.keys.sorted() {
            for index in 1...2 {
                let file = "\(store)-t\(index).sqlite"
                try storesync(["init", "--db", path(file), "--terminal", "--store", store])
                terminals.append((file, store))
            }
        }
        func sync(_ terminal: (file: String, store: String)) throws {
            let region = Self.regionOfStore[terminal.store] ?? ""
            try storesync(["sync", "--db", path(terminal.file), "--hub", hubOfRegion[region]?.address ?? ""])
        }

        var written: [String: Set<String>] = [:]
        var storeOfKey: [String: String] = [:]
        for _ in 0..<3 {
            for terminal in terminals {
                for (table, created) in try work(terminal.file, store: terminal.store, steps: 12, random: &random) {
                    written[table, default: []].formUnion(created)
                    for key in created { storeOfKey[key] = terminal.store }
                }
                // Some terminals stay offline this round.
                if Bool.random(using: &random) { try sync(terminal) }
            }
        }
        for terminal in terminals { try sync(terminal) }

        let tables = ["leads", "visits", "sales"]
        try waitUntil("HQ holds every row") { try tables.allSatisfy { try keys("hq.sqlite", $0) == written[$0, default: []] } }
        // Each regional hub pulls the other's... nothing: it holds its own region's rows only.
        for region in ["north", "south"] {
            for table in tables {
                let expected = written[table, default: []].filter { Self.regionOfStore[storeOfKey[$0] ?? ""] == region }
                XCTAssertEqual(try keys("\(region).sqlite", table), expected, "\(region) holds exactly its region's \(table)")
            }
        }
        try waitUntil("north holds HQ's threshold") { try keys("north.sqlite", "thresholds") == ["N1/K1"] }
        XCTAssertEqual(try keys("south.sqlite", "thresholds"), [], "a threshold of a north store stays out of south")

        // Everyone pulls; then every terminal holds exactly its store's rows, as HQ has them.
        for terminal in terminals { try sync(terminal) }
        let leadsSQL = "SELECT id, store, stage, score FROM leads WHERE store = ? ORDER BY id"
        for terminal in terminals {
            for table in tables {
                let expected = written[table, default: []].filter { storeOfKey[$0] == terminal.store }
                XCTAssertEqual(try keys(terminal.file, table), expected, "\(terminal.file) holds exactly its store's \(table)")
            }
            XCTAssertEqual(try query(terminal.file, leadsSQL, [.text(terminal.store)]),
                           try query("hq.sqlite", leadsSQL, [.text(terminal.store)]), "\(terminal.file) leads equal HQ's")
            XCTAssertEqual(try keys(terminal.file, "stores"), [terminal.store])
            XCTAssertEqual(try keys(terminal.file, "thresholds"), terminal.store == "N1" ? ["N1/K1"] : [])
        }
        // HQ's consolidated sales equal the totals of the events the terminals generated, locally
        // and over the protocol; a regional hub's report covers its region only.
        var saleCents: [String: (store: String, cents: Int64, units: Int64)] = [:]
        for terminal in terminals {
            for row in try query(terminal.file, "SELECT id, store, amount_cents, quantity FROM sales") {
                saleCents[row[0].textValue ?? ""] = (row[1].textValue ?? "", row[2].integerValue ?? 0, row[3].integerValue ?? 0)
            }
        }
        var expected: [String: (cents: Int64, units: Int64, orders: Int)] = [:]
        for sale in saleCents.values {
            let region = Self.regionOfStore[sale.store] ?? ""
            let total = expected[region] ?? (0, 0, 0)
            expected[region] = (total.cents + sale.cents, total.units + sale.units, total.orders + 1)
        }
        let expectedJSON = "[" + expected.keys.sorted().map { region in
            let total = expected[region] ?? (0, 0, 0)
            let revenue = "\(total.cents / 100)." + String(format: "%02d", Int(total.cents % 100))
            return "{\"region\":\"\(region)\",\"revenue\":\"\(revenue)\",\"units\":\(total.units),\"orders\":\(total.orders)}"
        }.joined(separator: ",\n ") + "]\n"
        let remote = try StoresyncBinary.run(["report", "--hub", hq.address, "--view", "sales", "--by", "region", "--format", "json"])
        XCTAssertEqual(remote.status, 0, remote.stderr)
        XCTAssertEqual(remote.stdout, expectedJSON)
        let local = try StoresyncBinary.run(["report", "--db", path("hq.sqlite"), "--view", "sales", "--by", "region", "--format", "json"])
        XCTAssertEqual(local.stdout, expectedJSON, local.stderr)
        let regional = try StoresyncBinary.run(["report", "--hub", north.address, "--view", "sales", "--by", "region", "--format", "csv"])
        XCTAssertEqual(regional.status, 0, regional.stderr)
        XCTAssertEqual(regional.stdout.split(separator: "\r\n").map(String.init).first, "region,revenue,units,orders")
        XCTAssertEqual(regional.stdout.split(separator: "\r\n").dropFirst().map { $0.split(separator: ",").first.map(String.init) }, ["north"])
        let unknown = try StoresyncBinary.run(["report", "--hub", hq.address, "--view", "sales", "--by", "month"])
        XCTAssertEqual(unknown.status, 64, "a bad parameter is a usage error, caught before connecting")

        for hub in [north, south, hq] {
            hub.signal(SIGTERM)
            XCTAssertEqual(try hub.waitForExit(), 0, "a hub drains and exits 0 on SIGTERM")
        }
    }

    func testARelayKilledMidRelayLosesAndDoublesNothing() throws {
        let hq = try startHQ()
        var north: HubProcess? = try startRegion("north", upstream: hq.address)
        try waitForStores("north")
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "N1"])
        var random = SplitMix64(seed: 7)
        var written: [String: Set<String>] = [:]
        for (table, created) in try work("t.sqlite", store: "N1", steps: 6_000, random: &random) {
            written[table, default: []].formUnion(created)
        }
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", north?.address ?? ""])
        let tables = ["leads", "visits", "sales"]

        // Kill the relay while its backlog is on the way to HQ, then start it again on its file.
        try waitUntil("HQ has begun to receive the relay", timeout: 60) { try !keys("hq.sqlite", "sales").isEmpty || !keys("hq.sqlite", "leads").isEmpty }
        north?.signal(SIGKILL)
        try north?.waitForExit()
        let atKill = try tables.reduce(0) { $0 + (try keys("hq.sqlite", $1).count) }
        print("RelayTests: HQ held \(atKill) of \(written.values.reduce(0) { $0 + $1.count }) rows when the relay was killed")
        north = nil
        north = try startRegion("north", upstream: hq.address)

        try waitUntil("HQ holds every row") { try tables.allSatisfy { try keys("hq.sqlite", $0) == written[$0, default: []] } }
        XCTAssertEqual(try query("hq.sqlite", "PRAGMA integrity_check").first?.first?.textValue, "ok")
        XCTAssertEqual(try query("north.sqlite", "PRAGMA integrity_check").first?.first?.textValue, "ok")
    }

    /// A store registered by a regional operator (unknown to HQ until its row is relayed, which
    /// may come after the store's rows in the relay's log) relays everything, and reference data
    /// an HQ operator writes into HQ's running file reaches the live regional hub on its own.
    func testStoresRegisteredBelowAndReferenceDataWrittenAtHQBothFlow() throws {
        let hq = try startHQ()
        let north = try startRegion("north", upstream: hq.address)
        try waitForStores("north")
        try storesync(["store", "add", "--db", path("north.sqlite"), "--id", "N9", "--region", "north", "--lat", "39.9", "--lon", "116.4"])
        try waitUntil("north's relay registered N9 at HQ") { try keys("hq.sqlite", "stores").contains("N9") }
        try storesync(["init", "--db", path("t9.sqlite"), "--terminal", "--store", "N9"])
        var random = SplitMix64(seed: 9)
        var written: [String: Set<String>] = [:]
        for (table, created) in try work("t9.sqlite", store: "N9", steps: 3_000, random: &random) {
            written[table, default: []].formUnion(created)
        }
        try storesync(["sync", "--db", path("t9.sqlite"), "--hub", north.address])
        // The operator corrects N9's coordinates: its stores row now follows its rows in the log.
        try storesync(["store", "add", "--db", path("north.sqlite"), "--id", "N9", "--region", "north", "--lat", "39.91", "--lon", "116.41"])
        let tables = ["leads", "visits", "sales"]
        try waitUntil("HQ holds every row of N9") { try tables.allSatisfy { try keys("hq.sqlite", $0) == written[$0, default: []] } }
        try waitUntil("HQ has N9's corrected coordinates") {
            try query("hq.sqlite", "SELECT latitude FROM stores WHERE id = 'N9'").first?.first == .real(39.91)
        }

        // An HQ operator sets a threshold while HQ runs; the live relay brings it down unasked.
        try storesync(["threshold", "set", "--db", path("hq.sqlite"), "--store", "N9", "--sku", "K1", "--min", "3"])
        try waitUntil("north holds the threshold set at HQ", timeout: 30) { try keys("north.sqlite", "thresholds").contains("N9/K1") }

        // A store never moves between regions: HQ refuses, and nothing changes.
        let move = try StoresyncBinary.run(["store", "add", "--db", path("hq.sqlite"), "--id", "N9", "--region", "south",
                                            "--lat", "22.5", "--lon", "114.1"])
        XCTAssertNotEqual(move.status, 0)
        XCTAssertEqual(try query("hq.sqlite", "SELECT region FROM stores WHERE id = 'N9'").first?.first, .text("north"))
    }
}
