import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// Stock-threshold promotions: a store whose stock of a SKU falls below its safety threshold
/// gets suggestions sent to the 5 nearest stores of its region that have the SKU, once per
/// crossing, re-armed when stock recovers, with ids every hub derives alike.
final class PromotionRuleTests: XCTestCase {
    /// Stores around S1 (Shanghai), further and further north; S9 is nearest but in another region.
    private static let stores: [(id: String, region: String, north: Double)] = [
        ("S1", "east", 0), ("S2", "east", 0.01), ("S3", "east", 0.02), ("S4", "east", 0.03), ("S5", "east", 0.04),
        ("S6", "east", 0.05), ("S7", "east", 0.06), ("S8", "east", 0.07), ("S9", "west", 0.005),
    ]
    /// Opening counts of K1: S3 has none left, S4 never stocked it.
    private static let opening: [String: Int64] = ["S1": 10, "S2": 20, "S3": 0, "S5": 15, "S6": 9, "S7": 7, "S8": 30, "S9": 50]
    private static let expectedTargets = ["S2", "S5", "S6", "S7", "S8"]

    private struct World {
        var factory: ReplicaFactory
        var reference: Changeset
        var openings: [Changeset]
        /// Per terminal, its later batches in the order it pushes them.
        var later: [[Changeset]]
        var terminals: [String: Replica]
        var hubClock: TestClock
    }

    /// HQ registers the stores and S1's threshold (5); every store counts its K1; then S1 sells
    /// 3 and 4 (stock 3: crossing 1), receives 10 (13: re-armed), sells 9 (4: crossing 2) and 2
    /// more (2: still the same crossing), while S2 and S6 sell a little.
    private func world() throws -> World {
        let factory = try ReplicaFactory(self)
        let hqClock = TestClock(testEpoch)
        let hq = try factory.open("hq", clock: hqClock)
        for store in Self.stores {
            try ReferenceData.setStore(id: store.id, region: store.region, latitude: 31.2304 + store.north, longitude: 121.4737,
                                       name: nil, in: hq)
        }
        try ReferenceData.setThreshold(store: "S1", sku: "K1", minimum: 5, in: hq)
        let reference = try hq.push()
        var terminals: [String: Replica] = [:]
        var clocks: [String: TestClock] = [:]
        var openings: [Changeset] = []
        for (store, count) in Self.opening.sorted(by: { $0.key < $1.key }) {
            let clock = TestClock(testEpoch + 60_000)
            let terminal = try factory.open("t-\(store)", clock: clock)
            _ = try FieldActivity.recordSignal(.stocktake, sku: "K1", quantity: count, guide: "G", store: store, in: terminal, now: clock.nowMs)
            openings.append(try terminal.push())
            terminals[store] = terminal
            clocks[store] = clock
        }
        func sell(_ store: String, _ kind: SignalKind, _ quantity: Int64, after milliseconds: UInt64) throws -> Changeset {
            let terminal = try XCTUnwrap(terminals[store])
            let clock = try XCTUnwrap(clocks[store])
            let mark = terminal.latestSequence
            clock.advance(by: milliseconds)
            _ = try FieldActivity.recordSignal(kind, sku: "K1", quantity: quantity, guide: "G", store: store, in: terminal, now: clock.nowMs)
            return try terminal.push(since: mark)
        }
        let s1 = [
            try sell("S1", .sale, 3, after: 1_000), try sell("S1", .sale, 4, after: 1_000), try sell("S1", .receipt, 10, after: 1_000),
            try sell("S1", .sale, 9, after: 1_000), try sell("S1", .sale, 2, after: 1_000),
        ]
        let s2 = [try sell("S2", .sale, 1, after: 1_500)]
        let s6 = [try sell("S6", .sale, 2, after: 2_500), try sell("S6", .receipt, 1, after: 100)]
        return World(factory: factory, reference: reference, openings: openings, later: [s1, s2, s6], terminals: terminals,
                     hubClock: TestClock(testEpoch + 3_600_000))
    }

    private func feed(_ hub: RulesHub, _ world: World, random: inout SplitMix64) throws {
        try hub.push(world.reference)
        for batch in world.openings.shuffled(using: &random) { try hub.push(batch) }
        // Later batches interleave at random, each terminal's in its own order (as a hub's cursors require).
        var queues = world.later
        while queues.contains(where: { !$0.isEmpty }) {
            let ready = queues.indices.filter { !queues[$0].isEmpty }
            let pick = ready[Int.random(in: 0..<ready.count, using: &random)]
            try hub.push(queues[pick].removeFirst())
        }
    }

    private func promotions(_ replica: Replica) throws -> [[SQLValue]] {
        try replica.rows("SELECT crossing, target_store, source_store, sku, stock_at_crossing, threshold FROM promotions ORDER BY crossing, distance_m")
    }

    func testACrossingSuggestsTheFiveNearestStoresOfTheRegionThatHaveTheSKU() throws {
        let world = try world()
        let hub = try RulesHub(try world.factory.open("hub", clock: world.hubClock))
        var random = SplitMix64(seed: 1)
        try feed(hub, world, random: &random)
        var expected: [[SQLValue]] = []
        for (crossing, stock) in [(1, 3), (2, 4)] as [(Int64, Int64)] {
            for target in Self.expectedTargets {
                expected.append([.integer(crossing), .text(target), .text("S1"), .text("K1"), .integer(stock), .integer(5)])
            }
        }
        XCTAssertEqual(try promotions(hub.replica), expected, "once per crossing, to S2, S5, S6, S7, S8: not S3 (none left), not S4 (never stocked), not S9 (other region)")
        let distances = try hub.replica.rows("SELECT distance_m FROM promotions WHERE crossing = 1 ORDER BY distance_m").compactMap { $0[0].integerValue }
        XCTAssertEqual(distances.count, 5)
        XCTAssertEqual(distances[0], 1_112, accuracy: 2, "0.01° of latitude is about 1,112 m")
        let issued = try hub.replica.rows("SELECT DISTINCT issued_ms, crossing_signal FROM promotions")
        XCTAssertEqual(issued.count, 2, "every row of a crossing carries its signal's time and id")

        // The suggestions reach the stores they are addressed to.
        let s2 = try XCTUnwrap(world.terminals["S2"])
        _ = try s2.apply(try hub.changes(for: s2.id))
        XCTAssertEqual(try Promotions.addressed(to: "S2", in: s2).map(\.crossing), [1, 2])
        XCTAssertEqual(try Promotions.addressed(to: "S3", in: s2), [])
    }

    func testHubsFedTheSameSignalsInDifferentOrdersIssueIdenticalRows() throws {
        let world = try world()
        var reference: String?
        for (index, seed) in propertySeeds("PromotionRuleTests", count: 8).enumerated() {
            var random = SplitMix64(seed: seed)
            let hub = try RulesHub(try world.factory.open("hub\(index)", clock: TestClock(world.hubClock.now + UInt64(index) * 7_919)))
            try feed(hub, world, random: &random)
            let dump = try hub.replica.canonicalDump(includeVersions: true)
            if let reference {
                XCTAssert(dump == reference, "seed \(seed) (replay with STORESYNC_SEED=\(seed)): \(firstDifference(dump, reference))")
            } else {
                reference = dump
                XCTAssertEqual(try hub.replica.count("SELECT count(*) FROM promotions"), 10)
            }
        }
    }

    func testResyncRestartAndASecondHubNeverDuplicateASuggestion() throws {
        let world = try world()
        var random = SplitMix64(seed: 7)
        let name = "restarting"
        var hub: RulesHub? = try RulesHub(try world.factory.open(name, clock: world.hubClock))
        try hub?.push([world.reference] + world.openings + [world.later[0][0], world.later[0][1]])
        XCTAssertEqual(try hub?.replica.count("SELECT count(*) FROM promotions"), 5)
        hub = nil
        let restarted = try RulesHub(try world.factory.open(name, clock: world.hubClock))
        // The terminal re-sends everything (its cursor was lost, say), then the rest.
        try restarted.push([world.reference] + world.openings + world.later.flatMap { $0 })
        XCTAssertEqual(try promotions(restarted.replica).count, 10)
        let sequence = restarted.replica.latestSequence
        try restarted.push(world.later.flatMap { $0 })
        XCTAssertEqual(restarted.replica.latestSequence, sequence, "a resync issues nothing")

        let straight = try RulesHub(try world.factory.open("straight", clock: TestClock(world.hubClock.now + 31_337)))
        try feed(straight, world, random: &random)
        XCTAssertEqual(try restarted.replica.canonicalDump(includeVersions: true), try straight.replica.canonicalDump(includeVersions: true))

        // HQ runs the rules too, on what the regional hub relays: it derives the same rows.
        let hq = try RulesHub(try world.factory.open("hq-hub", clock: TestClock(world.hubClock.now + 65_537)))
        var cursor: UInt64 = 0
        while cursor < straight.replica.latestSequence {
            let batch = try straight.replica.changes(since: cursor, limit: 4)
            try hq.push(batch)
            cursor = batch.toSequence
        }
        XCTAssertEqual(try promotions(hq.replica), try promotions(straight.replica))
        XCTAssertEqual(try hq.replica.canonicalDump(includeVersions: true), try straight.replica.canonicalDump(includeVersions: true))
    }

    /// Two terminals of S1 record K1 offline; the hub gets the later-stamped batch first. The
    /// signals are folded into version order, so the crossing found is the same either way.
    func testSignalsArrivingOutOfVersionOrderAreFoldedIntoPlace() throws {
        let factory = try ReplicaFactory(self)
        let hqClock = TestClock(testEpoch)
        let hq = try factory.open("hq", clock: hqClock)
        for store in Self.stores {
            try ReferenceData.setStore(id: store.id, region: store.region, latitude: 31.2304 + store.north, longitude: 121.4737, name: nil, in: hq)
        }
        try ReferenceData.setThreshold(store: "S1", sku: "K1", minimum: 5, in: hq)
        let reference = try hq.push()
        let clockA = TestClock(testEpoch + 10_000)
        let clockB = TestClock(testEpoch + 20_000)
        let a = try factory.open("a", clock: clockA)
        let b = try factory.open("b", clock: clockB)
        let s2 = try factory.open("s2", clock: clockA)
        _ = try FieldActivity.recordSignal(.stocktake, sku: "K1", quantity: 9, guide: nil, store: "S2", in: s2, now: clockA.nowMs)
        _ = try FieldActivity.recordSignal(.stocktake, sku: "K1", quantity: 10, guide: nil, store: "S1", in: a, now: clockA.nowMs)
        clockA.advance(by: 20_000)
        _ = try FieldActivity.recordSignal(.sale, sku: "K1", quantity: 3, guide: nil, store: "S1", in: a, now: clockA.nowMs)   // at +30 s
        _ = try FieldActivity.recordSignal(.sale, sku: "K1", quantity: 4, guide: nil, store: "S1", in: b, now: clockB.nowMs)   // at +20 s
        let batches = [try a.push(), try b.push()]
        var dumps: [String] = []
        for (index, order) in [[0, 1], [1, 0]].enumerated() {
            let hub = try RulesHub(try factory.open("hub\(index)", clock: TestClock(testEpoch + 3_600_000)))
            try hub.push([reference, try s2.push()])
            for position in order { try hub.push(batches[position]) }
            XCTAssertEqual(try hub.replica.rows("SELECT target_store, stock_at_crossing FROM promotions"), [[.text("S2"), .integer(3)]],
                           "order \(order): 10, then b's sale (6), then a's sale (3) crosses")
            dumps.append(try hub.replica.canonicalDump(includeVersions: true))
        }
        XCTAssertEqual(dumps[0], dumps[1])
    }

    /// A threshold applies from when it is set: setting one above the current stock issues
    /// nothing for the past; the next fall below it after stock recovered does.
    func testAThresholdSetLaterIssuesNothingForThePast() throws {
        let factory = try ReplicaFactory(self)
        let hqClock = TestClock(testEpoch)
        let hq = try factory.open("hq", clock: hqClock)
        for store in ["S1", "S2"].enumerated() {
            try ReferenceData.setStore(id: store.element, region: "east", latitude: 31 + Double(store.offset) / 100, longitude: 121,
                                       name: nil, in: hq)
        }
        let terminalClock = TestClock(testEpoch + 1_000)
        let s1 = try factory.open("s1", clock: terminalClock)
        let s2 = try factory.open("s2", clock: terminalClock)
        _ = try FieldActivity.recordSignal(.stocktake, sku: "K2", quantity: 50, guide: nil, store: "S2", in: s2, now: terminalClock.nowMs)
        for (kind, quantity) in [(SignalKind.stocktake, Int64(10)), (.sale, 8)] {
            terminalClock.advance(by: 1_000)
            _ = try FieldActivity.recordSignal(kind, sku: "K2", quantity: quantity, guide: nil, store: "S1", in: s1, now: terminalClock.nowMs)
        }
        let hub = try RulesHub(try factory.open("hub", clock: TestClock(testEpoch + 3_600_000)))
        try hub.push([try hq.push(), try s2.push(), try s1.push()])
        XCTAssertEqual(try hub.replica.count("SELECT count(*) FROM promotions"), 0, "no threshold, no crossing")

        hqClock.advance(by: 10_000)
        let mark = hq.latestSequence
        try ReferenceData.setThreshold(store: "S1", sku: "K2", minimum: 5, in: hq)
        try hub.push(try hq.push(since: mark))
        let s1Mark = s1.latestSequence
        terminalClock.advance(by: 20_000)
        _ = try FieldActivity.recordSignal(.sale, sku: "K2", quantity: 1, guide: nil, store: "S1", in: s1, now: terminalClock.nowMs)
        try hub.push(try s1.push(since: s1Mark))
        XCTAssertEqual(try hub.replica.count("SELECT count(*) FROM promotions"), 0, "stock 1 was already below the new threshold: no fall")
        for (kind, quantity) in [(SignalKind.receipt, Int64(10)), (.sale, 7)] {
            let before = s1.latestSequence
            terminalClock.advance(by: 1_000)
            _ = try FieldActivity.recordSignal(kind, sku: "K2", quantity: quantity, guide: nil, store: "S1", in: s1, now: terminalClock.nowMs)
            try hub.push(try s1.push(since: before))
        }
        XCTAssertEqual(try hub.replica.rows("SELECT target_store, crossing, stock_at_crossing FROM promotions"),
                       [[.text("S2"), .integer(2), .integer(4)]], "recovered to 11, fell to 4: the pair's second crossing in version order")
    }
}
