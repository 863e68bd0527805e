import Foundation
import Logging
import Retail
import SQLite
import SyncEngine

/// `storesync demo [--dir DIR] [--seed N] [--days N] [--log-level L]`: the whole chain on
/// loopback with simulated guides, then HQ's consolidated views and what the central rules did.
func runDemo(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["dir", "seed", "days", "log-level"])
    let seed = UInt64(try arguments.integer("seed", default: 42, range: 0...Int.max))
    let days = try arguments.integer("days", default: 3, range: 1...30)
    let name = arguments.optional("log-level") ?? "warning"
    guard let level = LogLevel(name: name) else { throw UsageError(message: "--log-level: unknown level \(name)") }
    let logger = Logger(label: "demo", minimumLevel: level)

    let directory: URL
    let keep: Bool
    if let given = arguments.optional("dir") {
        directory = URL(fileURLWithPath: given)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard !FileManager.default.fileExists(atPath: directory.appendingPathComponent("hq.sqlite").path) else {
            throw CommandError("\(given) already holds a demo (hq.sqlite); give an empty or new directory")
        }
        keep = true
    } else {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        keep = false
    }
    defer { if !keep { try? FileManager.default.removeItem(at: directory) } }

    let started = Date()
    var scenario = DemoScenario(seed: seed, days: days)
    let clock = DemoClock()
    clock.advance(to: DemoScenario.time(day: 0, tick: 0))
    let network = try DemoNetwork(directory: directory, clock: clock, logger: logger)
    defer { network.stop() }
    try scenario.registerReferenceData(at: network.hq)
    try network.start(stores: DemoScenario.stores, terminalsPerStore: 2)
    let regions = Set(DemoScenario.stores.map(\.region)).count
    print("StoreSync demo (seed \(seed)): HQ, \(regions) regional hubs, \(DemoScenario.stores.count) stores with 2 terminals each, on loopback")
    print("")

    try scenario.openingStocktake(on: network.terminals)
    for terminal in network.terminals { _ = try network.sync(terminal) }
    for day in 0..<days {
        var offline = Set<String>()
        for tick in 0..<DemoScenario.ticksPerDay {
            clock.advance(to: DemoScenario.time(day: day, tick: tick))
            for terminal in network.terminals {
                try scenario.work(on: terminal, day: day, tick: tick)
                if scenario.isOnline(terminal) {
                    _ = try network.sync(terminal)
                    scenario.written.syncs += 1
                } else {
                    offline.insert(terminal.name)
                    scenario.written.offlineTicks += 1
                }
            }
        }
        let date = ReportQuery.dayText(DemoScenario.time(day: day, tick: 0))
        print("day \(day + 1) (\(date)): guides worked offline and online; \(offline.count) of \(network.terminals.count) terminals were offline at some point")
    }
    try converge(network, scenario: scenario)

    let demoReport = DemoReport(hq: network.hq, now: scenario.endMilliseconds)
    print("")
    print("what the guides did: \(scenario.written.leads) leads (\(scenario.written.reenteredCustomers) for customers already entered), "
          + "\(scenario.written.stageMoves) stage moves, "
          + "\(scenario.written.visits) visits, \(scenario.written.sales) sales, \(scenario.written.stockSignals) stock signals; "
          + "\(scenario.written.syncs) syncs, \(scenario.written.offlineTicks) offline periods")
    print("")
    try demoReport.printAll()
    print("")
    print("finished in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    if keep {
        print("replicas are in \(directory.path): hq.sqlite, \(DemoScenario.stores.map(\.region).uniqued().map { "\($0).sqlite" }.joined(separator: ", ")), and one file per terminal, e.g.")
        print("  sqlite3 \(directory.appendingPathComponent("hq.sqlite").path) \"SELECT store, count(*), sum(amount_cents) FROM sales GROUP BY store\"")
    }
}

/// Everything reaches HQ through the relays, then the terminals pull what the hubs and HQ
/// produced for them (stage corrections, promotions). Waits on the data itself, with deadlines.
private func converge(_ network: DemoNetwork, scenario: DemoScenario) throws {
    for terminal in network.terminals { _ = try network.sync(terminal) }
    let expected = [("leads", scenario.written.leads), ("visits", scenario.written.visits), ("sales", scenario.written.sales),
                    ("inventory_signals", scenario.written.stockSignals)]
    try waitUntil("HQ holds every store's rows", timeout: 60) {
        try expected.allSatisfy { table, count in try network.hq.count(table) == count }
    }
    // The hubs' own writes (corrections, promotions) must be at HQ too, and HQ's at the hubs.
    try waitUntil("HQ and the regional hubs agree on the rules' rows", timeout: 60) {
        let atHQ = try network.hq.count("promotions") + network.hq.count("rule_reviews")
        let atHubs = try network.regionalReplicas.reduce(0) { $0 + (try $1.count("promotions")) + (try $1.count("rule_reviews")) }
        return atHQ == atHubs
    }
    for terminal in network.terminals { _ = try network.sync(terminal) }
}

extension Replica {
    /// Rows in one of the retail tables (names from this file only, never from input).
    func count(_ table: String) throws -> Int {
        Int(try read { database in try database.fetchScalar("SELECT count(*) FROM \(table)")?.integerValue ?? 0 })
    }
}

extension Sequence where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
