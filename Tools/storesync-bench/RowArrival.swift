import Foundation
import Retail
import SQLite
import SyncEngine

/// Tells when a hub holds every row a fleet of terminals wrote: the row count of each table the
/// terminals write, read on a reader of the hub's file (its own connection and snapshot, beside
/// the hub's writer), equals the fleet's.
///
/// Counting some 90,000 rows takes a millisecond or two of CPU the hub would feel, so a count
/// is made only once the hub's latest sequence (a figure in memory) shows at least as many new
/// row changes as there are rows to come, and at most every `countInterval`.
struct RowArrival {
    static let tables = [RetailSchema.leads, RetailSchema.visits, RetailSchema.sales, RetailSchema.inventorySignals].map(\.name)
    static let pollInterval: Duration = .milliseconds(2)
    static let countInterval: Duration = .milliseconds(10)

    /// Rows per table, summed over the terminals.
    let expected: [Int]
    var total: Int { expected.reduce(0, +) }

    init(terminals: [Replica]) throws {
        var expected = [Int](repeating: 0, count: Self.tables.count)
        for replica in terminals {
            let counts = try replica.read { database in try Self.counts(database) }
            for index in expected.indices { expected[index] += counts[index] }
        }
        self.expected = expected
    }

    private static func counts(_ database: Database) throws -> [Int] {
        try tables.map { table in Int(try database.fetchScalar("SELECT count(*) FROM \(table.rawValue)")?.integerValue ?? 0) }
    }

    /// Polls until `hub` holds every row (it held none of them at sequence `base`) and returns
    /// the monotonic time (`monotonicNanos`) of the count that found them all; throws when
    /// `deadline` (from now) passes first.
    func wait(on hub: Replica, reader: ReplicaReader, base: UInt64, deadline: Duration) throws -> UInt64 {
        let giveUp = monotonicNanos() + Self.nanoseconds(deadline)
        var nextCount: UInt64 = 0
        var last: [Int] = []
        while true {
            let now = monotonicNanos()
            if hub.latestSequence >= base + UInt64(total), now >= nextCount {
                last = try reader.read { database in try Self.counts(database) }
                if last == expected { return monotonicNanos() }
                nextCount = now + Self.nanoseconds(Self.countInterval)
            }
            guard now < giveUp else {
                let held = last.isEmpty ? "not counted yet (latest sequence \(hub.latestSequence - base) of \(total) rows)"
                    : zip(Self.tables, zip(last, expected)).map { "\($0.rawValue) \($1.0)/\($1.1)" }.joined(separator: ", ")
                throw BenchError.timeout("the hub did not hold every row within \(deadline): \(held)")
            }
            usleep(UInt32(Self.nanoseconds(Self.pollInterval) / 1_000))
        }
    }

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        UInt64(duration.components.seconds) * 1_000_000_000 + UInt64(duration.components.attoseconds / 1_000_000_000)
    }
}
