import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// Stock as a CRDT: the latest stocktake by version plus the deltas after it, the same on every
/// replica that holds the same signals, whatever order they arrived in, and the same in the
/// hub's incremental fold (`rules_stock_events`) as in a fold from scratch.
final class StockLedgerTests: XCTestCase {
    private let origin = ReplicaID(high: 1, low: 1)

    private func event(_ id: String, _ millisecond: UInt64, _ kind: SignalKind, _ quantity: Int64) -> StockEvent {
        StockEvent(signal: id, version: Version(hlc: HLCTimestamp(milliseconds: testEpoch + millisecond, counter: 0), origin: origin),
                   kind: kind, quantity: quantity)
    }

    func testLatestStocktakeByVersionPlusTheDeltasAfterIt() {
        let events = [
            event("a", 1, .receipt, 5), event("b", 2, .stocktake, 10), event("c", 3, .sale, -3),
            event("d", 4, .adjustment, -1), event("e", 6, .receipt, 4),
        ]
        XCTAssertEqual(StockLedger.stock(of: events), 10)
        XCTAssertEqual(StockLedger.stock(of: events.reversed()), 10)
        // A stocktake counted later (by version) resets what came before it, whatever its arrival.
        XCTAssertEqual(StockLedger.stock(of: events + [event("f", 5, .stocktake, 2)]), 6)
        XCTAssertEqual(StockLedger.stock(of: [event("x", 1, .sale, -2)]), -2, "deltas before any stocktake count from 0")
    }

    func testCrossingsAreCountedOncePerFallAndRearmAtTheThreshold() {
        var fold = StockFold()
        let steps: [(SignalKind, Int64, Bool)] = [
            (.stocktake, 10, false), (.sale, -3, false), (.sale, -3, true), (.sale, -1, false),
            (.receipt, 1, false), (.receipt, 1, false), (.sale, -1, true), (.stocktake, 2, false),
        ]
        for (index, step) in steps.enumerated() {
            XCTAssertEqual(fold.apply(step.0, step.1, threshold: 5), step.2, "step \(index)")
        }
        XCTAssertEqual(fold.crossings, 2)
        XCTAssertEqual(fold.stock, 2)
        var fresh = StockFold()
        XCTAssertFalse(fresh.apply(.sale, -4, threshold: 5), "a pair starts disarmed: it has not been at the threshold yet")
        XCTAssertFalse(fresh.apply(.stocktake, 3, threshold: 5))
        XCTAssertFalse(fresh.apply(.receipt, 2, threshold: 5))
        XCTAssertTrue(fresh.apply(.sale, -1, threshold: 5))
        var saturating = StockFold()
        _ = saturating.apply(.receipt, .max, threshold: nil)
        _ = saturating.apply(.receipt, 5, threshold: nil)
        XCTAssertEqual(saturating.stock, .max)
    }

    /// Terminals of one store record random signals offline with skewed clocks; replicas receive
    /// the batches in random orders (some twice); every replica, and the hub's incremental fold,
    /// computes the stock of a fold from scratch over all signals in version order.
    func testEveryReplicaComputesTheSameStockWhateverTheArrivalOrder() throws {
        for seed in propertySeeds("StockLedgerTests", count: 25) {
            do {
                try checkStockConverges(seed: seed)
            } catch {
                XCTFail("seed \(seed) (replay with STORESYNC_SEED=\(seed)): \(error)")
                return
            }
        }
    }

    private func checkStockConverges(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let factory = try ReplicaFactory(self)
        let skus = ["K1", "K2"]
        let clocks = (0..<3).map { _ in TestClock(testEpoch + UInt64.random(in: 0..<2_000, using: &random)) }
        let terminals = try clocks.enumerated().map { try factory.open("t\($0.offset)", clock: $0.element) }
        var batches: [Changeset] = []
        var sequences = [UInt64](repeating: 0, count: terminals.count)
        for _ in 0..<Int.random(in: 10...60, using: &random) {
            let index = Int.random(in: 0..<terminals.count, using: &random)
            clocks[index].advance(by: UInt64.random(in: 0...40, using: &random))
            let kind = SignalKind.allCases.randomElement(using: &random) ?? .sale
            let quantity: Int64 = kind == .adjustment ? Int64.random(in: -5...5, using: &random) | 1 : Int64.random(in: kind == .stocktake ? 0...30 : 1...9, using: &random)
            _ = try FieldActivity.recordSignal(kind, sku: skus.randomElement(using: &random) ?? "K1", quantity: quantity, guide: "G\(index)",
                                               store: "S1", in: terminals[index], now: clocks[index].nowMs)
            if Bool.random(using: &random) {
                batches.append(try terminals[index].changes(since: sequences[index], onlyLocalWrites: true))
                sequences[index] = terminals[index].latestSequence
            }
        }
        for (index, terminal) in terminals.enumerated() {
            batches.append(try terminal.changes(since: sequences[index], onlyLocalWrites: true))
        }
        let hubClock = TestClock(testEpoch + 10_000_000)
        let hub = try RulesHub(try factory.open("hub", clock: hubClock))
        let observers = try (0..<2).map { try factory.open("o\($0)", clock: hubClock) }
        for (position, replica) in ([hub.replica] + observers).enumerated() {
            var order = batches + batches.filter { _ in Bool.random(using: &random) }
            order.shuffle(using: &random)
            for batch in order {
                if position == 0 { try hub.push(batch) } else { _ = try replica.apply(batch) }
            }
        }

        // The reference: every signal, folded in version order.
        var events: [String: [StockEvent]] = [:]
        var all: [String: (String, SignalKind, Int64)] = [:]
        for terminal in terminals {
            for row in try terminal.rows("SELECT id, sku, kind, quantity FROM inventory_signals") {
                all[row[0].textValue ?? ""] = (row[1].textValue ?? "", SignalKind(rawValue: row[2].textValue ?? "") ?? .sale, row[3].integerValue ?? 0)
            }
        }
        try hub.replica.forEachRowVersion(in: RetailSchema.inventorySignals.name) { key, version in
            guard let signal = all[key] else { return }
            events[signal.0, default: []].append(StockEvent(signal: key, version: version, kind: signal.1, quantity: signal.2))
        }
        XCTAssertEqual(events.values.reduce(0) { $0 + $1.count }, all.count, "the hub holds every signal")
        let expected = skus.filter { events[$0] != nil }.map { ($0, StockLedger.stock(of: events[$0] ?? [])) }

        for replica in [hub.replica] + observers {
            let levels = try StockLedger.levels(in: replica, store: "S1")
            XCTAssertEqual(levels.map(\.sku), expected.map(\.0), "seed \(seed)")
            XCTAssertEqual(levels.map(\.stock), expected.map(\.1), "seed \(seed)")
        }
        for (sku, stock) in expected {
            let folded = try hub.replica.rows(
                "SELECT stock FROM rules_stock_events WHERE store = 'S1' AND sku = ? ORDER BY hlc DESC, origin DESC LIMIT 1", [.text(sku)])
            XCTAssertEqual(folded.first?.first?.integerValue, stock, "the hub's incremental fold of \(sku), seed \(seed)")
        }
    }
}
