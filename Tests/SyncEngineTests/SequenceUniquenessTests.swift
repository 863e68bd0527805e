import Foundation
import SQLite
import XCTest
@testable import SyncEngine

/// Sequence numbers are unique across every table of a file, whatever number of processes
/// write it, and a pull cursor never passes a row it did not deliver.
final class SequenceUniquenessTests: XCTestCase {
    private let leadName = TestSchema.column("name")
    private let store = TestSchema.column("store")

    /// Another process commits between a replica's open transaction and its first write (the
    /// window where `data_version` used to be read): the replica notices it and hands out
    /// numbers above it. Failed with "UNIQUE constraint failed: sync_log_visits.seq".
    func testACommitRightAfterOpenIsNoticedBeforeTheFirstWrite() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let other = try Replica(path: path, schema: TestSchema.tables)
        try other.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-0", [store: .text("S1")]) }

        var options = ReplicaOptions()
        options.afterOpenTransaction = { [leadName, store] in
            _ = try? other.write { tx in
                try tx.insert(into: TestSchema.visits, primaryKey: "visit-between", [store: .text("S1")])
                try tx.insert(into: TestSchema.leads, primaryKey: "lead-between", [leadName: .text("b")])
            }
        }
        let replica = try Replica(path: path, schema: TestSchema.tables, options: options)
        try replica.write { tx in
            try tx.insert(into: TestSchema.visits, primaryKey: "visit-1", [store: .text("S1")])
            try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [leadName: .text("a")])
        }
        XCTAssertEqual(try replica.read { try $0.fetchScalar("SELECT count(*) FROM leads") }, .integer(2))
        try assertSequencesUnique(replica)
        XCTAssertEqual(try replica.changes(since: 0).rowCount, 5)
    }

    /// A file written by format 1 (no unique index on the leads' sequence, duplicates left by
    /// the race, no recorded clock high-water) opens, migrates in place and keeps every row.
    func testAFormatOneFileWithReusedSequencesMigratesAndKeepsItsRows() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("old.sqlite").path
        var replica: Replica? = try Replica(path: path, schema: TestSchema.tables)
        for index in 0..<4 {
            try replica?.write { tx in
                try tx.insert(into: TestSchema.leads, primaryKey: "lead-\(index)", [leadName: .text("n\(index)")])
                try tx.insert(into: TestSchema.visits, primaryKey: "visit-\(index)", [store: .text("S\(index)")])
            }
        }
        let dump = try XCTUnwrap(replica?.canonicalDump())
        let highest = try XCTUnwrap(replica?.clock.last)
        try replica?.close()
        replica = nil

        // Rewrite the file into format 1's shape, with the duplicates the race left.
        do {
            let raw = try Database(path: path)
            try raw.execute("""
                DROP INDEX sync_lww_leads_seq;
                CREATE INDEX sync_lww_leads_by_seq ON sync_lww_leads (seq);
                UPDATE sync_state SET value = 1 WHERE key = 'format';
                DELETE FROM sync_state WHERE key = 'clock_high_water';
                UPDATE sync_lww_leads SET seq = (SELECT seq FROM sync_lww_leads WHERE pk = 'lead-0') WHERE pk = 'lead-1';
                UPDATE sync_log_visits SET seq = (SELECT seq FROM sync_lww_leads WHERE pk = 'lead-3') WHERE pk = 'visit-2';
                """)
            let duplicates = try raw.fetchScalar("""
                SELECT count(*) - count(DISTINCT seq) FROM (SELECT seq FROM sync_lww_leads UNION ALL SELECT seq FROM sync_log_visits)
                """)
            XCTAssertEqual(duplicates, .integer(2), "the old shape holds two reused sequences (in one table, across two)")
        }

        let migrated = try Replica(path: path, schema: TestSchema.tables)
        let reopenedHighest = migrated.clock.last
        XCTAssertGreaterThanOrEqual(reopenedHighest, try XCTUnwrap(migratedHighestVersion(migrated)))
        XCTAssertLessThanOrEqual(reopenedHighest, highest)
        try assertSequencesUnique(migrated)
        let indexes = try migrated.read { db in
            try db.fetchAll("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sync_lww_leads' AND sql IS NOT NULL")
        }
        XCTAssertEqual(indexes.compactMap { $0[0].textValue }, ["sync_lww_leads_seq"])
        XCTAssertTrue(indexes.first?[1].textValue?.contains("UNIQUE") ?? false)
        XCTAssertEqual(try migrated.setting("format"), .integer(2))
        XCTAssertEqual(try migrated.canonicalDump(), dump)
        let pulled = try migrated.changes(since: 0)
        XCTAssertEqual(pulled.rowCount, 8, "every row is offered again from 0")

        // A reused sequence in the leads' log now fails loudly instead of hiding a row.
        XCTAssertThrowsError(try Database(path: path).execute(
            "UPDATE sync_lww_leads SET seq = (SELECT seq FROM sync_lww_leads WHERE pk = 'lead-0') WHERE pk = 'lead-2'"))
    }

    /// Four processes write both table kinds of one file at once, each opening the replica
    /// afresh per batch as one-shot commands do, while this process pulls `changes(since:)`
    /// without pause. Every sequence is unique, no writer failed, and the puller's copy holds
    /// exactly what the file holds: its cursor never passed a row it did not deliver.
    func testConcurrentProcessesNeverReuseASequenceAndAPullerSkipsNothing() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let writer = try crashWriterExecutable(for: self)
        let replica = try Replica(path: path, schema: TestSchema.tables)
        let peer = try Replica(path: ":memory:", schema: TestSchema.tables)
        let processes = 4, batches = 60
        let children = try (0..<processes).map { index in
            try ChildRun.start(writer, ["--db", path, "--seed", String(1_000 + index), "--concurrent", String(batches)],
                               in: directory, name: "writer-\(index)")
        }

        var pulled: UInt64 = 0
        var pulls = 0
        while children.contains(where: { $0.process.isRunning }) {
            let batch = try replica.changes(since: pulled, limit: 50)
            XCTAssertGreaterThanOrEqual(batch.toSequence, pulled)
            _ = try peer.apply(batch, recordCursor: false)
            pulled = batch.toSequence
            pulls += 1
        }
        for (index, child) in children.enumerated() {
            let result = child.finish()
            XCTAssertEqual(result.status, 0, "writer \(index) failed: \(result.stderr)")
            XCTAssertEqual(result.stdout.split(separator: "\n").count, batches, "writer \(index)")
        }
        while true {
            let batch = try replica.nextBatch(since: pulled, limit: 50)
            _ = try peer.apply(batch.changeset, recordCursor: false)
            pulled = batch.changeset.toSequence
            if !batch.more { break }
        }
        try assertSequencesUnique(replica)
        XCTAssertEqual(try replica.read { try $0.fetchScalar("SELECT count(*) FROM visits") }, .integer(Int64(processes * batches * 2)))
        XCTAssertEqual(try peer.canonicalDump(includeVersions: true), try replica.canonicalDump(includeVersions: true),
                       "a pull cursor skipped a row (\(pulls) pulls during the writes)")
    }

    private func assertSequencesUnique(_ replica: Replica, file: StaticString = #filePath, line: UInt = #line) throws {
        let sequences = try replica.read { db in
            try db.fetchAll("SELECT seq FROM sync_log_visits UNION ALL SELECT seq FROM sync_lww_leads").compactMap(\.first?.integerValue)
        }
        XCTAssertEqual(Set(sequences).count, sequences.count, "a sequence number was handed out twice", file: file, line: line)
    }

    private func migratedHighestVersion(_ replica: Replica) throws -> HLCTimestamp? {
        var highest: HLCTimestamp?
        for table in [TestSchema.leads, TestSchema.visits] {
            try replica.forEachRowVersion(in: table) { _, version in highest = max(highest ?? .zero, version.hlc) }
        }
        return highest
    }
}
