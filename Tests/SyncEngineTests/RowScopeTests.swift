import Foundation
import XCTest
@testable import SyncEngine

/// A store's scope as the tests model it: rows whose `store` column is the store.
private struct StoreScope: RowScope {
    var store: String
    func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool {
        guard let storeColumn = columns.firstIndex(of: TestSchema.column("store")) else { return false }
        return row.cells.contains { $0.column == storeColumn && $0.value == .text(store) }
    }
}

final class RowScopeTests: XCTestCase {
    /// Leads and visits of stores S1 and S2; returns each key's store and the S1 leads' keys.
    @discardableResult
    private func writeMixedStores(_ replica: Replica, count: Int) throws -> (storeOfKey: [String: String], s1Leads: [String]) {
        var storeOfKey: [String: String] = [:]
        var s1Leads: [String] = []
        for index in 0..<count {
            let store = index % 3 == 0 ? "S1" : "S2"
            let lead = UniqueID.make()
            let visit = UniqueID.make()
            storeOfKey[lead] = store
            storeOfKey[visit] = store
            if store == "S1" { s1Leads.append(lead) }
            try replica.write { tx in
                try tx.insert(into: TestSchema.leads, primaryKey: lead, [TestSchema.column("store"): .text(store), TestSchema.column("name"): .text("n\(index)")])
                try tx.insert(into: TestSchema.visits, primaryKey: visit, [TestSchema.column("store"): .text(store)])
            }
        }
        return (storeOfKey, s1Leads)
    }

    func testPagingWithAScopeReturnsExactlyTheScopesRowsAndCoversEverySequence() throws {
        let replica = try openMemoryReplica()
        let (storeOfKey, s1Leads) = try writeMixedStores(replica, count: 30)
        // A row of S1 that is later moved to S2 leaves the scope: its latest state is S2's.
        let moved = try XCTUnwrap(s1Leads.first)
        try replica.write { tx in try tx.update(TestSchema.leads, primaryKey: moved, set: [TestSchema.column("store"): .text("S2")]) }

        for pageSize in [1, 4, 1_000] {
            var cursor: UInt64 = 0
            var seen: [String] = []
            var batches = 0
            while true {
                let batch = try replica.nextBatch(since: cursor, limit: pageSize, scope: StoreScope(store: "S1"))
                XCTAssertGreaterThanOrEqual(batch.changeset.toSequence, cursor)
                seen += batch.changeset.tables.flatMap { $0.rows.map(\.primaryKey) }
                cursor = batch.changeset.toSequence
                batches += 1
                XCTAssertLessThan(batches, 1_000, "paging does not end")
                if !batch.more { break }
            }
            let expected = storeOfKey.filter { $0.value == "S1" && $0.key != moved }.map(\.key)
            XCTAssertEqual(Set(seen), Set(expected), "page size \(pageSize)")
            XCTAssertEqual(seen.count, expected.count, "no row twice (page size \(pageSize))")
            XCTAssertEqual(cursor, replica.latestSequence, "the cursor passes rows outside the scope")
        }
    }

    func testAReaderAppliesTheSameScope() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let replica = try Replica(path: directory.appendingPathComponent("r.sqlite").path, schema: TestSchema.tables)
        let storeOfKey = try writeMixedStores(replica, count: 12).storeOfKey
        let fromReader = try replica.makeReader().changes(since: 0, scope: StoreScope(store: "S2"))
        let fromWriter = try replica.changes(since: 0, scope: StoreScope(store: "S2"))
        XCTAssertEqual(fromReader, fromWriter)
        XCTAssertEqual(Set(fromReader.tables.flatMap { $0.rows.map(\.primaryKey) }),
                       Set(storeOfKey.filter { $0.value == "S2" }.map(\.key)))
        XCTAssertEqual(try replica.changes(since: 0, scope: UnlimitedScope()), try replica.changes(since: 0))
    }

    /// Two terminals of one store and their hub. T1 creates a lead, T2 changes its stage. T2's
    /// push (only its own writes) and the hub's pull for T1 (everything T1 did not write) must
    /// both carry the lead's `store`, which neither of those writers set in that change, or the
    /// scope check would refuse the push and hide T2's change from T1.
    func testFilteredBatchesCarryWholeRowsSoScopeSeesTheStore() throws {
        let hub = try openMemoryReplica()
        let first = try openMemoryReplica()
        let second = try openMemoryReplica()
        let scope = StoreScope(store: "S1")
        let lead = UniqueID.make()
        try first.write { tx in
            try tx.insert(into: TestSchema.leads, primaryKey: lead, [TestSchema.column("store"): .text("S1"), TestSchema.column("stage"): .text("reached")])
        }
        _ = try hub.apply(try first.changes(since: 0, onlyLocalWrites: true, scope: scope))
        _ = try second.apply(try hub.changes(since: 0, excluding: second.id, scope: scope))
        let base = second.latestSequence
        try second.write { tx in try tx.update(TestSchema.leads, primaryKey: lead, set: [TestSchema.column("stage"): .text("demo")]) }

        let push = try second.changes(since: base, onlyLocalWrites: true)
        let pushed = try XCTUnwrap(push.tables.first { $0.table == TestSchema.leads }?.rows.first)
        XCTAssertTrue(scope.admits(pushed, of: TestSchema.leads, columns: push.tables[0].columns), "the push carries the store cell")
        let hubBase = hub.latestSequence
        _ = try hub.apply(push)

        let pull = try hub.changes(since: hubBase, excluding: first.id, scope: scope)
        XCTAssertEqual(pull.rowCount, 1, "T1 gets T2's change of T1's lead")
        _ = try first.apply(pull)
        XCTAssertEqual(try first.canonicalDump(), try second.canonicalDump())
        XCTAssertEqual(try first.canonicalDump(), try hub.canonicalDump())
    }
}
