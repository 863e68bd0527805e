import Foundation
import Retail
import SQLite
import Synchronization
import SyncEngine
import XCTest

/// Seeds for property tests: `STORESYNC_SEED` replays one, `STORESYNC_SEEDS` sets how many.
func propertySeeds(_ label: String, count defaultCount: Int) -> [UInt64] {
    let environment = ProcessInfo.processInfo.environment
    if let one = environment["STORESYNC_SEED"].flatMap(UInt64.init) {
        print("\(label): replaying seed \(one)")
        return [one]
    }
    let count = environment["STORESYNC_SEEDS"].flatMap(Int.init) ?? defaultCount
    let first = UInt64.random(in: 1...UInt64(UInt32.max))
    print("\(label): seeds \(first)... (\(count) of them, step 7919; replay one with STORESYNC_SEED=N)")
    return (0..<UInt64(count)).map { first &+ $0 &* 7919 }
}

/// A wall clock tests move by hand.
final class TestClock: Sendable {
    private let milliseconds: Mutex<UInt64>
    init(_ start: UInt64) { milliseconds = Mutex(start) }
    func advance(by delta: UInt64) { milliseconds.withLock { $0 += delta } }
    var now: UInt64 { milliseconds.withLock { $0 } }
    var nowMs: Int64 { Int64(now) }
    var wallClock: WallClock { { [self] in self.now } }
}

/// 2026-01-01T00:00:00Z: every test clock starts near it.
let testEpoch: UInt64 = 1_767_225_600_000

/// Replicas in temporary files, removed when the test ends.
final class ReplicaFactory {
    let directory: URL

    init(_ test: XCTestCase) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("retail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let directory = self.directory
        test.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent("\(name).sqlite").path }

    func open(_ name: String, clock: TestClock) throws -> Replica {
        var options = ReplicaOptions()
        options.wallClock = clock.wallClock
        options.synchronous = .off
        return try Replica(path: path(name), schema: RetailSchema.all, options: options)
    }
}

/// A hub as the rules see it: a replica whose merges run the retail rules in the transaction,
/// the way the hub's merge queue calls them.
struct RulesHub {
    let replica: Replica
    let rules: RetailRules

    init(_ replica: Replica) throws {
        self.replica = replica
        self.rules = try RetailRules.install(on: replica)
    }

    /// Merges pushed batches in one group and returns what the rules wrote in total.
    @discardableResult
    func push(_ changesets: [Changeset]) throws -> RetailRules.Outcome {
        var total = RetailRules.Outcome()
        let results = try replica.apply(group: changesets) { changeset, result, transaction in
            let outcome = try rules.judge(changeset, result: result, transaction: transaction)
            total.stageCompensations += outcome.stageCompensations
            total.duplicateLinks += outcome.duplicateLinks
            total.promotions += outcome.promotions
            total.reviews += outcome.reviews
        }
        for result in results { _ = try result.get() }
        return total
    }

    @discardableResult
    func push(_ changeset: Changeset) throws -> RetailRules.Outcome { try push([changeset]) }

    /// What `peer` would pull: everything it did not write itself.
    func changes(for peer: ReplicaID) throws -> Changeset { try replica.changes(since: 0, excluding: peer) }
}

extension Replica {
    func rows(_ sql: String, _ values: [SQLValue] = []) throws -> [[SQLValue]] {
        try read { database in try database.fetchAll(sql, values) }
    }

    func text(_ sql: String, _ values: [SQLValue] = []) throws -> String? {
        try read { database in try database.fetchScalar(sql, values)?.textValue }
    }

    func count(_ sql: String, _ values: [SQLValue] = []) throws -> Int64 {
        try read { database in try database.fetchScalar(sql, values)?.integerValue ?? -1 }
    }

    /// The replica's own writes since `sequence`: what a terminal pushes.
    func push(since sequence: UInt64 = 0) throws -> Changeset { try changes(since: sequence, onlyLocalWrites: true) }
}

func column(_ name: String) -> ColumnName {
    do {
        return try ColumnName(name)
    } catch {
        preconditionFailure("bad column name \(name)")
    }
}

/// The first line where two dumps differ, for a readable failure.
func firstDifference(_ a: String, _ b: String) -> String {
    let left = a.split(separator: "\n", omittingEmptySubsequences: false)
    let right = b.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(left.count, right.count) {
        let l = index < left.count ? String(left[index]) : "<end>"
        let r = index < right.count ? String(right[index]) : "<end>"
        if l != r { return "line \(index): \(l) vs \(r)" }
    }
    return "identical"
}
