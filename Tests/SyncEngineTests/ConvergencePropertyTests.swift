import XCTest
import SQLite
@testable import SyncEngine

/// Random operation histories on several replicas, exchanged in random orders with
/// duplicated, stale and re-ordered changesets: every replica must end byte-identical.
final class ConvergencePropertyTests: XCTestCase {
    /// Seeds per run; `STORESYNC_SEEDS` raises it for a soak, `STORESYNC_SEED` replays one.
    private var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let one = environment["STORESYNC_SEED"].flatMap(UInt64.init) { return [one] }
        let count = environment["STORESYNC_SEEDS"].flatMap(Int.init) ?? 300
        return (0..<UInt64(count)).map { 0xC0FFEE &+ $0 &* 7919 }
    }

    func testRandomHistoriesConverge() throws {
        for seed in seeds {
            do {
                try runHistory(seed: seed)
            } catch {
                XCTFail("seed \(seed) (replay with STORESYNC_SEED=\(seed)): \(error)")
                return
            }
        }
    }

    private func runHistory(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let replicaCount = Int.random(in: 3...5, using: &random)
        let clocks = (0..<replicaCount).map { _ in ManualClock(1_700_000_000_000 + UInt64.random(in: 0..<5_000, using: &random)) }
        let replicas = try clocks.map { try openMemoryReplica(clock: $0) }
        var world = History(random: random)
        var network: [(target: Int, changeset: Changeset)] = []

        for _ in 0..<Int.random(in: 20...80, using: &world.random) {
            let actor = Int.random(in: 0..<replicaCount, using: &world.random)
            clocks[actor].advance(by: UInt64.random(in: 0...3, using: &world.random))
            switch Int.random(in: 0..<10, using: &world.random) {
            case 0...5:
                try world.randomLocalWrite(on: replicas[actor])
            case 6...7:
                // Ship a changeset from a random (possibly stale) cursor; deliver it later, maybe twice.
                let target = (actor + Int.random(in: 1..<replicaCount, using: &world.random)) % replicaCount
                let since = UInt64.random(in: 0...replicas[actor].latestSequence, using: &world.random)
                let limit = Int.random(in: 1...20, using: &world.random)
                let changeset = try replicas[actor].changes(since: since, limit: limit)
                network.append((target, changeset))
                if Bool.random(using: &world.random) { network.append((target, changeset)) }
            default:
                guard !network.isEmpty else { continue }
                let index = Int.random(in: 0..<network.count, using: &world.random)
                let delivery = network[index]
                if Bool.random(using: &world.random) { network.remove(at: index) }
                _ = try replicas[delivery.target].apply(delivery.changeset)
            }
        }

        // Deliver whatever is still in flight, in random order.
        network.shuffle(using: &world.random)
        for delivery in network { _ = try replicas[delivery.target].apply(delivery.changeset) }

        // Then sync pairwise through cursors, in batches, until nothing moves.
        try syncUntilQuiet(replicas, random: &world.random)

        let reference = try replicas[0].canonicalDump(includeVersions: true)
        for (index, replica) in replicas.enumerated().dropFirst() {
            let dump = try replica.canonicalDump(includeVersions: true)
            if dump != reference {
                XCTFail("replica \(index) diverged from replica 0 (replay with STORESYNC_SEED=\(seed)): \(firstDifference(dump, reference))")
                return
            }
        }
        XCTAssertEqual(try replicas[0].read { try $0.integrityCheck() }, "ok")
    }
}

/// Pairwise cursor-driven sync, the way terminals and hubs exchange changes.
func syncUntilQuiet(_ replicas: [Replica], random: inout SplitMix64) throws {
    for round in 0..<10 {
        var moved = false
        let pairs = replicas.indices.flatMap { source in replicas.indices.filter { $0 != source }.map { (source, $0) } }
        for (source, target) in pairs.shuffled(using: &random) {
            while true {
                let cursor = try replicas[target].cursor(for: replicas[source].id)
                let batch = try replicas[source].changes(since: cursor.received, limit: Int.random(in: 3...50, using: &random),
                                                         excluding: replicas[target].id)
                if batch.toSequence == cursor.received { break }
                let result = try replicas[target].apply(batch)
                XCTAssertEqual(result.receivedCursor, batch.toSequence, "a contiguous batch must advance the cursor")
                if !result.isNoOp { moved = true }
                if result.receivedCursor == nil { break }
            }
        }
        if !moved && round > 0 { return }
    }
}

/// The random operations of one history: what each replica may legally do next.
struct History {
    var random: SplitMix64
    private var nextKey = 0

    init(random: SplitMix64) { self.random = random }

    private mutating func randomValue(for column: String) -> Value {
        switch column {
        case "score", "due_ms": return Int.random(in: 0..<4, using: &random) == 0 ? .null : .integer(Int64.random(in: 0...100, using: &random))
        default:
            let choices: [Value] = [.null, .text("a"), .text("b"), .text("é"), .text(""), .integer(7), .real(0.5), .blob([1, 2])]
            return choices[Int.random(in: 0..<choices.count, using: &random)]
        }
    }

    mutating func randomLocalWrite(on replica: Replica) throws {
        let leads = try replica.read { database in
            try database.fetchAll("SELECT id FROM leads").compactMap { $0[0].textValue }
        }
        let deleted = try replica.read { database in
            try database.fetchAll("SELECT pk FROM sync_lww_leads WHERE cl % 2 = 0").compactMap { $0[0].textValue }
        }
        let choice = Int.random(in: 0..<10, using: &random)
        if choice < 3 || (leads.isEmpty && deleted.isEmpty) || choice == 9 && deleted.isEmpty {
            // A new lead: keys come from a small shared pool so replicas also collide on keys.
            nextKey += 1
            let key = "L\(Int.random(in: 0..<12, using: &random))"
            let values = TestSchema.leadColumns.map { randomValue(for: $0) }
            do {
                try replica.write { try $0.insert(into: TestSchema.leads, primaryKey: key, values: values) }
            } catch SyncError.rowExists {
                return
            }
        } else if choice < 6, let key = leads.randomElement(using: &random) {
            var set: [ColumnName: Value] = [:]
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let column = TestSchema.leadColumns.randomElement(using: &random) ?? "name"
                set[TestSchema.column(column)] = randomValue(for: column)
            }
            try replica.write { try $0.update(TestSchema.leads, primaryKey: key, set: set) }
        } else if choice < 8, let key = leads.randomElement(using: &random) {
            try replica.write { try $0.delete(from: TestSchema.leads, primaryKey: key) }
        } else if choice == 9, let key = deleted.randomElement(using: &random) {
            let values = TestSchema.leadColumns.map { randomValue(for: $0) }
            try replica.write { try $0.insert(into: TestSchema.leads, primaryKey: key, values: values) }
        } else {
            let key = UniqueID.make(milliseconds: 1_700_000_000_000, using: &random)
            let values: [Value] = [.text("L1"), .text("S1"), .text("g"), .integer(Int64.random(in: 0...1000, using: &random)),
                                   .integer(5), .text("sku-1,sku-2"), randomValue(for: "outcome"), .real(4.5)]
            try replica.write { try $0.insert(into: TestSchema.visits, primaryKey: key, values: values) }
        }
    }
}

/// The first line where two dumps differ, instead of both dumps whole.
func firstDifference(_ left: String, _ right: String) -> String {
    let a = left.split(separator: "\n", omittingEmptySubsequences: false)
    let b = right.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(a.count, b.count) {
        let x = index < a.count ? String(a[index]) : "<end>"
        let y = index < b.count ? String(b[index]) : "<end>"
        if x != y { return "line \(index + 1): \(x)  vs  \(y)" }
    }
    return "no difference"
}

/// The hub-and-terminals shape of a real deployment, without sockets: terminals push only
/// their own writes, the hub answers pulls without the puller's own writes, and batches are
/// small. Every terminal must end identical to the hub.
final class StarTopologyPropertyTests: XCTestCase {
    private var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let one = environment["STORESYNC_SEED"].flatMap(UInt64.init) { return [one] }
        let count = environment["STORESYNC_SEEDS"].flatMap(Int.init) ?? 200
        return (0..<UInt64(count)).map { 0xBEEF &+ $0 &* 104_729 }
    }

    func testTerminalsConvergeThroughAHub() throws {
        for seed in seeds {
            do {
                try run(seed: seed)
            } catch {
                XCTFail("seed \(seed) (replay with STORESYNC_SEED=\(seed)): \(error)")
                return
            }
        }
    }

    /// One terminal's session with the hub, as `SyncSession` runs it.
    private func sync(_ terminal: Replica, hub: Replica, limit: Int) throws {
        var pushed = try hub.cursor(for: terminal.id).received
        var scan = pushed
        while true {
            let batch = try terminal.nextBatch(since: scan, limit: limit, onlyLocalWrites: true)
            if batch.changeset.toSequence == scan { break }
            scan = batch.changeset.toSequence
            if batch.changeset.isEmpty { continue }
            var changeset = batch.changeset
            changeset.fromSequence = pushed
            let result = try hub.apply(changeset)
            XCTAssertEqual(result.receivedCursor, changeset.toSequence)
            pushed = changeset.toSequence
        }
        while true {
            let cursor = try terminal.cursor(for: hub.id).received
            let batch = try hub.nextBatch(since: cursor, limit: limit, excluding: terminal.id)
            _ = try terminal.apply(batch.changeset)
            if !batch.more { break }
        }
    }

    private func run(seed: UInt64) throws {
        var history = History(random: SplitMix64(seed: seed))
        let hubClock = ManualClock()
        let hub = try openMemoryReplica(clock: hubClock)
        let clocks = (0..<Int.random(in: 2...4, using: &history.random)).map { _ in ManualClock() }
        let terminals = try clocks.map { try openMemoryReplica(clock: $0) }
        for _ in 0..<Int.random(in: 20...70, using: &history.random) {
            let index = Int.random(in: 0..<terminals.count, using: &history.random)
            clocks[index].advance(by: UInt64.random(in: 0...3, using: &history.random))
            hubClock.advance(by: 1)
            if Int.random(in: 0..<3, using: &history.random) == 0 {
                try sync(terminals[index], hub: hub, limit: Int.random(in: 1...6, using: &history.random))
            } else {
                try history.randomLocalWrite(on: terminals[index])
            }
        }
        for _ in 0..<2 {
            for terminal in terminals { try sync(terminal, hub: hub, limit: 5) }
        }
        let reference = try hub.canonicalDump(includeVersions: true)
        for (index, terminal) in terminals.enumerated() {
            let dump = try terminal.canonicalDump(includeVersions: true)
            if dump != reference {
                XCTFail("terminal \(index) differs from the hub (replay with STORESYNC_SEED=\(seed)): \(firstDifference(dump, reference))")
                return
            }
        }
    }
}
