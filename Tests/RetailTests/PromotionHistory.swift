import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// A random stock history for the promotion rule's property tests: the stores of one region at
/// random places (and two of another region, nearer than some), random safety thresholds, one or
/// two terminals per store recording stock signals. All terminals read one shared clock that
/// moves on at every write, so version order is the order the writes were made in.
struct PromotionHistory {
    static let skus = ["K1", "K2"]

    /// The stores and thresholds, written by an operator before any signal.
    let reference: Changeset
    let terminals: [Replica]
    /// Every write in the order it was made (version order): its terminal and that terminal's
    /// sequence after it.
    let writes: [(terminal: Int, sequence: UInt64)]

    init(seed: UInt64, factory: ReplicaFactory) throws {
        var random = SplitMix64(seed: seed)
        let operatorReplica = try factory.open("operator", clock: TestClock(testEpoch))
        let region = (1...Int.random(in: 4...8, using: &random)).map { "E\($0)" }
        var stores: [String] = []
        for (store, name) in region.map({ ($0, "east") }) + [("W1", "west"), ("W2", "west")] {
            try ReferenceData.setStore(id: store, region: name, latitude: 31 + Double.random(in: 0..<0.2, using: &random),
                                       longitude: 121 + Double.random(in: 0..<0.2, using: &random), name: nil, in: operatorReplica)
            stores.append(store)
            for sku in Self.skus where Int.random(in: 0..<10, using: &random) < 7 {
                try ReferenceData.setThreshold(store: store, sku: sku, minimum: Int64.random(in: 2...8, using: &random), in: operatorReplica)
            }
        }
        reference = try operatorReplica.push()

        var terminals: [Replica] = []
        var clocks: [TestClock] = []
        var terminalsOf: [String: [Int]] = [:]
        for store in stores {
            for number in 0..<(Bool.random(using: &random) ? 2 : 1) {
                let clock = TestClock(testEpoch + 60_000)
                terminalsOf[store, default: []].append(terminals.count)
                terminals.append(try factory.open("t-\(store)-\(number)", clock: clock))
                clocks.append(clock)
            }
        }
        var now = testEpoch + 60_000
        var writes: [(terminal: Int, sequence: UInt64)] = []
        for _ in 0..<Int.random(in: 30...60, using: &random) {
            now += UInt64.random(in: 1...600, using: &random)
            let store = stores.randomElement(using: &random) ?? "E1"
            let terminal = terminalsOf[store]?.randomElement(using: &random) ?? 0
            clocks[terminal].advance(by: now - clocks[terminal].now)
            let roll = Int.random(in: 0..<20, using: &random)
            let (kind, quantity): (SignalKind, Int64) = roll < 4 ? (.stocktake, Int64.random(in: 0...15, using: &random))
                : roll < 15 ? (.sale, Int64.random(in: 1...5, using: &random)) : (.receipt, Int64.random(in: 1...10, using: &random))
            _ = try FieldActivity.recordSignal(kind, sku: Self.skus.randomElement(using: &random) ?? "K1", quantity: quantity, guide: nil,
                                               store: store, in: terminals[terminal], now: clocks[terminal].nowMs)
            writes.append((terminal, terminals[terminal].latestSequence))
        }
        self.terminals = terminals
        self.writes = writes
    }

    /// Pushes that deliver every write in version order: runs of consecutive writes of one
    /// terminal, cut at random (a terminal that synced after some of its writes).
    func pushesInVersionOrder(_ random: inout SplitMix64) throws -> [Changeset] {
        var pushes: [Changeset] = []
        var pushed = [UInt64](repeating: 0, count: terminals.count)
        var index = 0
        while index < writes.count {
            let terminal = writes[index].terminal
            var end = index + 1
            while end < writes.count && writes[end].terminal == terminal && Bool.random(using: &random) { end += 1 }
            pushes.append(try push(terminal, from: &pushed, upTo: writes[end - 1].sequence))
            index = end
        }
        return pushes
    }

    /// Pushes of terminals that go offline for a while: each terminal delivers its writes in its
    /// own order, but at random moments, so signals often reach the hub after signals of other
    /// stores (and of the store's other terminal) with later versions.
    func pushesOfTerminalsOffline(_ random: inout SplitMix64) throws -> [Changeset] {
        var pushes: [Changeset] = []
        var pushed = [UInt64](repeating: 0, count: terminals.count)
        var written = [UInt64](repeating: 0, count: terminals.count)
        for write in writes {
            written[write.terminal] = write.sequence
            if Int.random(in: 0..<10, using: &random) < 4 {
                let terminal = Int.random(in: 0..<terminals.count, using: &random)
                if written[terminal] > pushed[terminal] { pushes.append(try push(terminal, from: &pushed, upTo: written[terminal])) }
            }
        }
        for terminal in terminals.indices where written[terminal] > pushed[terminal] {
            pushes.append(try push(terminal, from: &pushed, upTo: written[terminal]))
        }
        return pushes
    }

    private func push(_ terminal: Int, from pushed: inout [UInt64], upTo sequence: UInt64) throws -> Changeset {
        // One row per write: the rows up to `sequence`.
        let count = writes.filter { $0.terminal == terminal && $0.sequence > pushed[terminal] && $0.sequence <= sequence }.count
        let batch = try terminals[terminal].changes(since: pushed[terminal], limit: count, onlyLocalWrites: true)
        XCTAssertEqual(batch.toSequence, sequence, "a push ends at the write it was cut after")
        pushed[terminal] = sequence
        return batch
    }
}

extension Changeset {
    /// The stores whose inventory signals the batch carries.
    var signalStores: Set<String> {
        var stores: Set<String> = []
        for table in tables where table.table == RetailSchema.inventorySignals.name {
            guard let store = table.columns.firstIndex(where: { $0.rawValue == "store" }) else { continue }
            for row in table.rows {
                for cell in row.cells where cell.column == store {
                    if case .text(let id) = cell.value { stores.insert(id) }
                }
            }
        }
        return stores
    }
}
