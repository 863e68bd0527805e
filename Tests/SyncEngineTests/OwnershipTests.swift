import Dispatch
import Foundation
import SQLite
import XCTest
@testable import SyncEngine

/// Who owns what: a domain error thrown inside a write comes out as itself, reads run in a
/// transaction on a reader connection of their own, never on the writer's.
final class OwnershipTests: XCTestCase {
    private struct OutOfStock: Error, Equatable {
        var sku: String
    }

    func testAWriteRethrowsADomainErrorAsItselfAndRollsBack() throws {
        let replica = try openMemoryReplica()
        XCTAssertThrowsError(try replica.write { tx in
            try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [TestSchema.column("name"): .text("a")])
            throw OutOfStock(sku: "SKU-9")
        }) { error in
            XCTAssertEqual(error as? OutOfStock, OutOfStock(sku: "SKU-9"), "got \(error)")
        }
        XCTAssertEqual(try replica.canonicalDump(), "", "the transaction rolled back")
        XCTAssertEqual(replica.latestSequence, 0)
    }

    func testAGroupApplyRethrowsADomainErrorOfItsHookAsItself() throws {
        let source = try openMemoryReplica()
        try source.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [TestSchema.column("name"): .text("a")]) }
        let replica = try openMemoryReplica()
        XCTAssertThrowsError(try replica.apply(group: [try source.changes(since: 0)]) { _, _, _ in throw OutOfStock(sku: "x") }) { error in
            XCTAssertEqual(error as? OutOfStock, OutOfStock(sku: "x"), "got \(error)")
        }
        XCTAssertEqual(try replica.canonicalDump(), "")
    }

    func testReadIsOneTransactionOnAConnectionOtherThanTheWriters() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let replica = try Replica(path: directory.appendingPathComponent("r.sqlite").path, schema: TestSchema.tables)
        try replica.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [TestSchema.column("name"): .text("a")]) }
        XCTAssertFalse(try replica.read { $0.isAutocommit }, "a read is a transaction: its statements see one snapshot")
        XCTAssertEqual(try replica.read { try $0.fetchScalar("SELECT count(*) FROM leads") }, .integer(1))
        XCTAssertThrowsError(try replica.read { try $0.execute("DELETE FROM leads") }, "the reader's connection is read-only")

        // A read goes ahead while a write holds the writer (an open transaction on another thread).
        let insideWrite = DispatchSemaphore(value: 0)
        let finishWrite = DispatchSemaphore(value: 0)
        let writer = Thread {
            try? replica.write { tx in
                try tx.insert(into: TestSchema.leads, primaryKey: "lead-2", [TestSchema.column("name"): .text("b")])
                insideWrite.signal()
                finishWrite.wait()
            }
        }
        writer.start()
        insideWrite.wait()
        let readDone = DispatchSemaphore(value: 0)
        let count = LockedCount()
        Thread {
            count.set((try? replica.read { try $0.fetchScalar("SELECT count(*) FROM leads")?.integerValue }) ?? nil)
            readDone.signal()
        }.start()
        let finished = readDone.wait(timeout: .now() + .seconds(20)) == .success
        finishWrite.signal()
        if !finished { readDone.wait() }
        XCTAssertTrue(finished, "a read waited for the writer")
        XCTAssertEqual(count.value, 1, "the read saw the last commit, not the open transaction")
    }

    func testAnInMemoryReplicaReadsInATransactionOnItsOnlyConnection() throws {
        let replica = try openMemoryReplica()
        try replica.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [TestSchema.column("name"): .text("a")]) }
        XCTAssertFalse(try replica.read { $0.isAutocommit })
        XCTAssertEqual(try replica.read { try $0.fetchScalar("SELECT count(*) FROM leads") }, .integer(1))
    }
}

private final class LockedCount: @unchecked Sendable {
    // `@unchecked` is true: `stored` is read and written only under `lock`.
    private let lock = NSLock()
    private var stored: Int64?
    func set(_ value: Int64?) { lock.withLock { stored = value } }
    var value: Int64? { lock.withLock { stored } }
}

extension OwnershipTests {
    /// Statements a rule prepares by name belong to the replica whose transaction prepared them.
    func testNamedStatementsArePreparedOncePerReplica() throws {
        let first = try openMemoryReplica()
        let second = try openMemoryReplica()
        let sql = "SELECT count(*) FROM leads"
        let a = try first.write { tx in ObjectIdentifier(try tx.preparedStatement("count", sql)) }
        let b = try first.write { tx in ObjectIdentifier(try tx.preparedStatement("count", sql)) }
        XCTAssertEqual(a, b, "prepared once per replica")
        try second.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "x", [TestSchema.column("name"): .text("a")]) }
        let count = try second.write { tx in try tx.preparedStatement("count", sql).fetchOne()?.first }
        XCTAssertEqual(count, .integer(1), "the other replica's statement runs on its own connection")
    }
}
