import XCTest
import SQLite
@testable import SyncEngine

/// Group commit: several sessions' changesets merged in one transaction, with a hook for central rules.
final class GroupApplyTests: XCTestCase {
    private let nameColumn = TestSchema.column("name")

    private func changeset(from replica: Replica, lead key: String) throws -> Changeset {
        try replica.write { try $0.insert(into: TestSchema.leads, primaryKey: key, [self.nameColumn: .text(key)]) }
        return try replica.changes(since: 0)
    }

    func testABadChangesetFailsAloneAndTheOthersCommit() throws {
        let hub = try openMemoryReplica()
        let good1 = try changeset(from: try openMemoryReplica(), lead: "A")
        var bad = try changeset(from: try openMemoryReplica(), lead: "B")
        bad.tables[0].columns[0] = try ColumnName("no_such_column")
        let good2 = try changeset(from: try openMemoryReplica(), lead: "C")

        let results = try hub.apply(group: [good1, bad, good2])
        XCTAssertEqual(results.count, 3)
        XCTAssertEqual(try results[0].get().rowsInserted, 1)
        XCTAssertThrowsError(try results[1].get()) {
            XCTAssertEqual($0 as? SyncError, .unknownColumn(table: "leads", column: "no_such_column"))
        }
        XCTAssertEqual(try results[2].get().rowsInserted, 1)
        let keys = try hub.read { try $0.fetchAll("SELECT id FROM leads ORDER BY id").compactMap { $0[0].textValue } }
        XCTAssertEqual(keys, ["A", "C"])
        XCTAssertEqual(try hub.cursor(for: good1.source).received, good1.toSequence)
        XCTAssertEqual(try hub.cursor(for: bad.source).received, 0)
    }

    func testTheHookSeesEachChangeAndItsWritesReplicate() throws {
        let hub = try openMemoryReplica()
        let terminal = try openMemoryReplica()
        let incoming = try changeset(from: terminal, lead: "L1")
        var seen: [String] = []
        _ = try hub.apply(group: [incoming]) { _, result, transaction in
            for change in result.changedRows {
                seen.append(change.primaryKey)
                try transaction.update(change.table, primaryKey: change.primaryKey, set: [TestSchema.column("stage"): .text("checked")])
            }
        }
        XCTAssertEqual(seen, ["L1"])
        _ = try terminal.apply(try hub.changes(since: 0, excluding: terminal.id))
        XCTAssertEqual(try terminal.read { try $0.fetchScalar("SELECT stage FROM leads WHERE id = 'L1'") }, .text("checked"))
    }

    func testAFailingHookRollsBackTheWholeGroup() throws {
        struct RuleFailed: Error {}
        let hub = try openMemoryReplica()
        let first = try changeset(from: try openMemoryReplica(), lead: "A")
        let second = try changeset(from: try openMemoryReplica(), lead: "B")
        XCTAssertThrowsError(try hub.apply(group: [first, second]) { changeset, _, _ in
            if changeset == second { throw RuleFailed() }
        })
        XCTAssertEqual(try hub.canonicalDump(), "")
        XCTAssertEqual(hub.latestSequence, 0)
        XCTAssertEqual(try hub.cursor(for: first.source).received, 0)
    }
}
