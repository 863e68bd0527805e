import XCTest
import SQLite
@testable import SyncEngine

final class ReplicaReaderTests: XCTestCase {
    func testAReaderServesTheSameChangesAsTheWriterAndSeesOnlyCommittedWrites() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let replica = try Replica(path: directory.appendingPathComponent("hub.sqlite").path, schema: TestSchema.tables)
        let reader = try replica.makeReader()
        let terminal = try openMemoryReplica()
        try terminal.write { try $0.insert(into: TestSchema.leads, primaryKey: "L1", [TestSchema.column("name"): .text("a")]) }
        _ = try replica.apply(try terminal.changes(since: 0))
        try replica.write { tx in
            try tx.insert(into: TestSchema.visits, primaryKey: UniqueID.make(), [TestSchema.column("store"): .text("S1")])
        }
        XCTAssertEqual(try reader.changes(since: 0), try replica.changes(since: 0))
        XCTAssertEqual(try reader.changes(since: 0, excluding: terminal.id), try replica.changes(since: 0, excluding: terminal.id))

        // While the writer holds an open transaction, the reader sees the last commit only.
        let before = try reader.changes(since: 0)
        try replica.write { tx in
            try tx.insert(into: TestSchema.leads, primaryKey: "L2", [TestSchema.column("name"): .text("b")])
            XCTAssertEqual(try reader.changes(since: 0), before)
        }
        XCTAssertEqual(try reader.changes(since: 0).rowCount, before.rowCount + 1)
    }

    func testInMemoryReplicasHaveNoReaders() throws {
        XCTAssertThrowsError(try openMemoryReplica().makeReader())
    }
}
