import Foundation
import XCTest
@testable import SyncEngine

/// Batches read in windows of sequences (`readChanges`) are exactly the batches of the rule
/// they implement, checked against that rule computed here from the replica's logs: every
/// table offers its first `limit` changes after the cursor, the batch ends before the first
/// sequence of a table that offered `limit` (or at the latest sequence), and of more than
/// `limit` rows in scope it keeps the first `limit` and ends at the last of them.
final class BatchWindowTests: XCTestCase {
    private struct StoreScope: RowScope {
        var store: String
        func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool {
            guard let storeColumn = columns.firstIndex(of: TestSchema.column("store")) else { return false }
            return row.cells.contains { $0.column == storeColumn && $0.value == .text(store) }
        }
    }

    private enum Filter: CaseIterable {
        case none
        case excludingPeer
        case onlyLocalWrites
    }

    func testWindowedBatchesMatchTheRuleOnInterleavedTables() throws {
        var random = SplitMix64(seed: 0xB47C4)
        let local = try openMemoryReplica()
        let peer = try openMemoryReplica()
        var leads: [String] = []
        // Interleaved leads (moved by updates, some deleted) and visits, local and from a peer.
        for step in 0..<400 {
            let store = step % 3 == 0 ? "S1" : "S2"
            let writer = step % 5 == 4 ? peer : local
            let choice = Int.random(in: 0..<10, using: &random)
            try writer.write { tx in
                if choice < 4 || leads.isEmpty || writer === peer {
                    let key = UniqueID.make(milliseconds: 1_700_000_000_000 + UInt64(step), using: &random)
                    try tx.insert(into: TestSchema.leads, primaryKey: key, [TestSchema.column("store"): .text(store)])
                    if writer === local { leads.append(key) }
                } else if choice < 8 {
                    let key = UniqueID.make(milliseconds: 1_700_000_000_000 + UInt64(step), using: &random)
                    try tx.insert(into: TestSchema.visits, primaryKey: key, [TestSchema.column("store"): .text(store)])
                } else if choice < 9 {
                    let key = leads[Int.random(in: 0..<leads.count, using: &random)]
                    try tx.update(TestSchema.leads, primaryKey: key, set: [TestSchema.column("stage"): .text("s\(step)")])
                } else {
                    try tx.delete(from: TestSchema.leads, primaryKey: leads.removeLast())
                }
            }
            if step % 25 == 24 {
                _ = try local.apply(try peer.changes(since: try local.cursor(for: peer.id).received))
            }
        }
        _ = try local.apply(try peer.changes(since: try local.cursor(for: peer.id).received))

        let latest = local.latestSequence
        var checked = 0
        for _ in 0..<300 {
            let since = UInt64.random(in: 0...latest, using: &random)
            let limit = [1, 2, 3, 7, 20, 64, 500][Int.random(in: 0..<7, using: &random)]
            let filter = Filter.allCases[Int.random(in: 0..<Filter.allCases.count, using: &random)]
            let scope: (any RowScope)? = Bool.random(using: &random) ? StoreScope(store: "S1") : nil
            let batch = try local.nextBatch(since: since, limit: limit, excluding: filter == .excludingPeer ? peer.id : nil,
                                            onlyLocalWrites: filter == .onlyLocalWrites, scope: scope)
            let expected = try expectedBatch(local, since: since, limit: limit, peer: filter == .excludingPeer ? peer.id : nil,
                                             onlyLocalWrites: filter == .onlyLocalWrites, scope: scope)
            let context = "since \(since), limit \(limit), \(filter), scope \(scope == nil ? "none" : "S1")"
            XCTAssertEqual(batch.changeset.toSequence, expected.toSequence, context)
            XCTAssertEqual(batch.more, expected.toSequence < latest, context)
            XCTAssertEqual(batch.changeset.tables, expected.tables, context)
            checked += 1
        }
        XCTAssertEqual(checked, 300)
    }

    /// The rule, from the logs' sequences and one unlimited read (which has no window to cut).
    private func expectedBatch(_ replica: Replica, since: UInt64, limit: Int, peer: ReplicaID?, onlyLocalWrites: Bool,
                               scope: (any RowScope)?) throws -> (toSequence: UInt64, tables: [TableChanges]) {
        let logs = [
            "SELECT pk, seq FROM sync_lww_leads WHERE seq > ? ORDER BY seq",
            "SELECT l.pk, l.seq FROM sync_log_visits AS l JOIN visits AS t ON t.id = l.pk WHERE l.seq > ? ORDER BY l.seq",
        ]
        let sequences: [[(key: String, sequence: UInt64)]] = try replica.read { database in
            try logs.map { sql in
                try database.fetchAll(sql, [.integer(Int64(since))]).map { (key: $0[0].textValue ?? "", sequence: UInt64($0[1].integerValue ?? 0)) }
            }
        }
        var cut = replica.latestSequence
        for offered in sequences where offered.count >= limit { cut = min(cut, offered[limit - 1].sequence) }
        let everything = try replica.nextBatch(since: since, limit: Int(Int32.max), excluding: peer, onlyLocalWrites: onlyLocalWrites, scope: scope)
        var kept: [(table: Int, sequence: UInt64, row: RowChange)] = []
        for (index, schema) in TestSchema.tables.enumerated() {
            let sequenceOf = Dictionary(uniqueKeysWithValues: sequences[index].map { ($0.key, $0.sequence) })
            for row in everything.changeset.tables.first(where: { $0.table == schema.name })?.rows ?? [] {
                let sequence = try XCTUnwrap(sequenceOf[row.primaryKey])
                if sequence <= cut { kept.append((index, sequence, row)) }
            }
        }
        kept.sort { $0.sequence < $1.sequence }
        var toSequence = cut
        if kept.count > limit {
            kept.removeSubrange(limit...)
            toSequence = kept[limit - 1].sequence
        }
        let tables = TestSchema.tables.enumerated().compactMap { index, schema -> TableChanges? in
            let rows = kept.filter { $0.table == index }.map(\.row)
            return rows.isEmpty ? nil : TableChanges(table: schema.name, columns: schema.columns.map(\.name), rows: rows)
        }
        return (toSequence, tables)
    }
}
