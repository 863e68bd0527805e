import XCTest
import SQLite
@testable import SyncEngine

/// Hand-picked cases of the merge rules, each named after the promise it checks.
final class ReplicaSemanticsTests: XCTestCase {
    private let leads = TestSchema.leads
    private let visits = TestSchema.visits
    private func column(_ name: String) -> ColumnName { TestSchema.column(name) }

    private func lead(_ replica: Replica, _ key: String) throws -> [Value]? {
        try replica.read { try $0.fetchAll("SELECT name, phone, stage FROM leads WHERE id = ?", [.text(key)]).first }
    }

    private func exchange(_ a: Replica, _ b: Replica) throws {
        _ = try b.apply(try a.changes(since: try b.cursor(for: a.id).received))
        _ = try a.apply(try b.changes(since: try a.cursor(for: b.id).received))
    }

    private func insertLead(_ replica: Replica, _ key: String, name: String = "n", phone: String = "p") throws {
        try replica.write { tx in
            try tx.insert(into: leads, primaryKey: key, [column("name"): .text(name), column("phone"): .text(phone), column("stage"): .text("reached")])
        }
    }

    func testConcurrentEditsOfDifferentColumnsBothSurvive() throws {
        let clockA = ManualClock(), clockB = ManualClock()
        let a = try openMemoryReplica(clock: clockA), b = try openMemoryReplica(clock: clockB)
        try insertLead(a, "L1")
        try exchange(a, b)
        clockA.advance(by: 10); clockB.advance(by: 20)
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("Ann")]) }
        try b.write { try $0.update(leads, primaryKey: "L1", set: [column("stage"): .text("demo")]) }
        try exchange(a, b)
        XCTAssertEqual(try lead(a, "L1"), [.text("Ann"), .text("p"), .text("demo")])
        XCTAssertEqual(try a.canonicalDump(includeVersions: true), try b.canonicalDump(includeVersions: true))
    }

    func testConcurrentEditsOfOneColumnGoToTheLaterWrite() throws {
        let clockA = ManualClock(), clockB = ManualClock()
        let a = try openMemoryReplica(clock: clockA), b = try openMemoryReplica(clock: clockB)
        try insertLead(a, "L1")
        try exchange(a, b)
        clockA.advance(by: 30); clockB.advance(by: 10)
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("later")]) }
        try b.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("earlier")]) }
        try exchange(a, b)
        XCTAssertEqual(try lead(b, "L1")?.first, .text("later"))
        XCTAssertEqual(try lead(a, "L1")?.first, .text("later"))
    }

    func testEqualClocksBreakTiesByReplicaID() throws {
        let clock = ManualClock()
        let a = try openMemoryReplica(clock: clock), b = try openMemoryReplica(clock: clock)
        try insertLead(a, "L1")
        try exchange(a, b)
        clock.advance(by: 5)
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("from-a")]) }
        try b.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("from-b")]) }
        try exchange(a, b)
        let expected: Value = a.id > b.id ? .text("from-a") : .text("from-b")
        XCTAssertEqual(try lead(a, "L1")?.first, expected)
        XCTAssertEqual(try lead(b, "L1")?.first, expected)
    }

    func testDeleteWinsOverConcurrentUpdate() throws {
        let clockA = ManualClock(), clockB = ManualClock()
        let a = try openMemoryReplica(clock: clockA), b = try openMemoryReplica(clock: clockB)
        try insertLead(a, "L1")
        try exchange(a, b)
        clockA.advance(by: 5); clockB.advance(by: 50)
        try a.write { try $0.delete(from: leads, primaryKey: "L1") }
        try b.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("late edit")]) }
        try exchange(a, b)
        XCTAssertNil(try lead(a, "L1"))
        XCTAssertNil(try lead(b, "L1"))
    }

    func testReinsertAfterDeleteWinsOverTheDeleteEverywhere() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica(), c = try openMemoryReplica()
        try insertLead(a, "L1", name: "first")
        try exchange(a, b); try exchange(a, c)
        try b.write { try $0.delete(from: leads, primaryKey: "L1") }
        try c.write { try $0.delete(from: leads, primaryKey: "L1") }
        try c.write { tx in try tx.insert(into: leads, primaryKey: "L1", [column("name"): .text("second")]) }
        // b's delete and c's re-insert meet at a in either order.
        try exchange(b, a); try exchange(c, a); try exchange(a, b); try exchange(a, c)
        for replica in [a, b, c] {
            XCTAssertEqual(try lead(replica, "L1"), [.text("second"), .null, .null])
        }
        XCTAssertEqual(try a.canonicalDump(includeVersions: true), try b.canonicalDump(includeVersions: true))
        XCTAssertEqual(try a.canonicalDump(includeVersions: true), try c.canonicalDump(includeVersions: true))
    }

    func testInsertOnlyRowsAreImmutableAndMergeOnce() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica()
        let key = UniqueID.make()
        try a.write { tx in
            try tx.insert(into: visits, primaryKey: key, [column("store"): .text("S1"), column("duration_min"): .integer(12)])
        }
        XCTAssertThrowsError(try a.write { try $0.update(visits, primaryKey: key, set: [column("store"): .text("S2")]) }) {
            XCTAssertEqual($0 as? SyncError, .immutableTable("visits"))
        }
        XCTAssertThrowsError(try a.write { try $0.delete(from: visits, primaryKey: key) })
        let changeset = try a.changes(since: 0)
        XCTAssertEqual(try b.apply(changeset).rowsInserted, 1)
        XCTAssertEqual(try b.apply(changeset).rowsInserted, 0)
        XCTAssertEqual(try b.read { try $0.fetchScalar("SELECT count(*) FROM visits") }, .integer(1))
        XCTAssertEqual(try b.read { try $0.fetchScalar("SELECT count(*) FROM sync_log_visits") }, .integer(1))
    }

    func testChangesSinceReturnsRowsChangedAfterTheCursorWithEveryCell() throws {
        let a = try openMemoryReplica()
        try insertLead(a, "L1")
        try insertLead(a, "L2")
        let mark = a.latestSequence
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("stage"): .text("demo")]) }
        let changeset = try a.changes(since: mark)
        XCTAssertEqual(changeset.rowCount, 1, "only the row changed after the cursor")
        let table = try XCTUnwrap(changeset.tables.first)
        let row = try XCTUnwrap(table.rows.first)
        XCTAssertEqual(row.primaryKey, "L1")
        let cells = Dictionary(uniqueKeysWithValues: row.cells.map { (table.columns[$0.column].rawValue, $0) })
        XCTAssertEqual(cells.count, TestSchema.leadColumns.count, "every cell, with its own version")
        XCTAssertEqual(cells["stage"]?.value, .text("demo"))
        XCTAssertEqual(cells["name"]?.value, .text("n"))
        XCTAssertLessThan(try XCTUnwrap(cells["name"]?.version), try XCTUnwrap(cells["stage"]?.version))
        XCTAssertEqual(cells["stage"]?.version.origin, a.id)
        XCTAssertEqual(changeset.toSequence, a.latestSequence)
        XCTAssertTrue(try a.changes(since: a.latestSequence).isEmpty)
    }

    /// A row whose cells changed on both sides of a page boundary, and changed again after the
    /// page was cut, still arrives whole: paging never loses a cell.
    func testPagingNeverLosesACellOfARowThatMovedPastThePage() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica()
        try insertLead(a, "L1")                                                       // seq 1
        try insertLead(a, "L2")                                                       // seq 2
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("name"): .text("page one")]) } // seq 3
        try insertLead(a, "L3")                                                       // seq 4
        try a.write { try $0.update(leads, primaryKey: "L1", set: [column("stage"): .text("later")]) }   // seq 5
        var cursor: UInt64 = 0
        repeat {
            let batch = try a.nextBatch(since: cursor, limit: 1)
            _ = try b.apply(batch.changeset)
            cursor = batch.changeset.toSequence
        } while cursor < a.latestSequence
        XCTAssertEqual(try lead(b, "L1"), [.text("page one"), .text("p"), .text("later")])
        XCTAssertEqual(try b.canonicalDump(includeVersions: true), try a.canonicalDump(includeVersions: true))
    }

    func testChangesAreBatchedAndResumable() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica()
        for index in 0..<25 { try insertLead(a, "L\(index)") }
        try a.write { tx in
            for _ in 0..<25 { try tx.insert(into: visits, primaryKey: UniqueID.make(), [column("store"): .text("S1")]) }
        }
        var batches = 0
        while true {
            let cursor = try b.cursor(for: a.id).received
            let batch = try a.changes(since: cursor, limit: 7)
            if batch.toSequence == cursor { break }
            XCTAssertLessThanOrEqual(batch.rowCount, 7)
            XCTAssertEqual(try b.apply(batch).receivedCursor, batch.toSequence)
            batches += 1
        }
        XCTAssertEqual(batches, 8)
        XCTAssertEqual(try a.canonicalDump(includeVersions: true), try b.canonicalDump(includeVersions: true))
    }

    func testABatchThatSkipsAheadDoesNotMoveTheCursor() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica()
        try insertLead(a, "L1")
        let mark = a.latestSequence
        try insertLead(a, "L2")
        let result = try b.apply(try a.changes(since: mark))
        XCTAssertNil(result.receivedCursor)
        XCTAssertEqual(try b.cursor(for: a.id).received, 0)
    }

    func testEchoesOfAPeersOwnWritesAreNotSentBack() throws {
        let terminal = try openMemoryReplica(), hub = try openMemoryReplica()
        try insertLead(terminal, "L1")
        _ = try hub.apply(try terminal.changes(since: 0))
        XCTAssertTrue(try hub.changes(since: 0, excluding: terminal.id).isEmpty)
        XCTAssertEqual(try hub.changes(since: 0).rowCount, 1)
    }

    func testALeafPushesOnlyItsOwnWrites() throws {
        let hub = try openMemoryReplica(), t1 = try openMemoryReplica(), t2 = try openMemoryReplica()
        try insertLead(t1, "L1")
        _ = try hub.apply(try t1.changes(since: 0, onlyLocalWrites: true))
        _ = try t2.apply(try hub.changes(since: 0, excluding: t2.id))
        XCTAssertTrue(try t2.changes(since: 0, onlyLocalWrites: true).isEmpty, "nothing of t2's own yet")
        try t2.write { try $0.update(self.leads, primaryKey: "L1", set: [self.column("stage"): .text("demo")]) }
        try t2.write { try $0.delete(from: self.leads, primaryKey: "L1") }
        let push = try t2.changes(since: 0, onlyLocalWrites: true)
        XCTAssertEqual(push.rowCount, 1)
        XCTAssertEqual(push.tables.first?.rows.first?.causalLength, 2, "its own delete is pushed")
        _ = try hub.apply(push)
        XCTAssertNil(try lead(hub, "L1"))
    }

    func testABadBatchChangesNothing() throws {
        let a = try openMemoryReplica(), b = try openMemoryReplica()
        try insertLead(a, "L1")
        var changeset = try a.changes(since: 0)
        changeset.tables.append(TableChanges(table: try TableName("nonexistent"), columns: [], rows: []))
        XCTAssertThrowsError(try b.apply(changeset)) { XCTAssertEqual($0 as? SyncError, .unknownTable("nonexistent")) }
        XCTAssertEqual(try b.canonicalDump(), "")
        XCTAssertEqual(b.latestSequence, 0)
    }

    func testAFailedWriteRollsBackDataLogAndSequence() throws {
        let a = try openMemoryReplica()
        try insertLead(a, "L1")
        let sequence = a.latestSequence
        XCTAssertThrowsError(try a.write { tx in
            try tx.insert(into: leads, primaryKey: "L2", [column("name"): .text("x")])
            try tx.insert(into: leads, primaryKey: "L1", [column("name"): .text("dup")])
        }) { XCTAssertEqual($0 as? SyncError, .rowExists(table: "leads", primaryKey: "L1")) }
        XCTAssertNil(try lead(a, "L2"))
        XCTAssertEqual(a.latestSequence, sequence)
        try insertLead(a, "L3")
        XCTAssertEqual(a.latestSequence, sequence + 1)
    }

    func testUserTablesArePlainSQLAndMetadataIsPrefixed() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("t.sqlite").path
        let replica = try Replica(path: path, schema: TestSchema.tables)
        try insertLead(replica, "L1", name: "Mei")
        let raw = try Database(path: path, options: { var o = Database.Options(); o.readOnly = true; return o }())
        XCTAssertEqual(try raw.fetchAll("SELECT name FROM leads WHERE id = 'L1'"), [[.text("Mei")]])
        let tables = try raw.fetchAll("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").compactMap { $0[0].textValue }
        XCTAssertEqual(tables.filter { !$0.hasPrefix("sync_") }, ["leads", "visits"])
    }

    func testReopeningKeepsIdentitySequenceAndRefusesAChangedSchema() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("t.sqlite").path
        var replica: Replica? = try Replica(path: path, schema: TestSchema.tables)
        let id = try XCTUnwrap(replica?.id)
        try insertLead(try XCTUnwrap(replica), "L1")
        let sequence = try XCTUnwrap(replica?.latestSequence)
        replica = nil
        let reopened = try Replica(path: path, schema: TestSchema.tables)
        XCTAssertEqual(reopened.id, id)
        XCTAssertEqual(reopened.latestSequence, sequence)
        let changed = try TableSchema("leads", kind: .lastWriterWins, columns: [("name", .text)])
        XCTAssertThrowsError(try Replica(path: path, schema: [changed])) { error in
            guard case .schemaMismatch(let table, _)? = error as? SyncError else { return XCTFail("\(error)") }
            XCTAssertEqual(table, "leads")
        }
    }
}
