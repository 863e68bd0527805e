import Foundation
import XCTest
@testable import SyncEngine

/// The clock a replica resumes with after reopening is at or above every version in its file,
/// whichever row holds that version: merged rows arrive in any order, so the row with the
/// highest sequence is not the one with the highest version.
final class ClockResumeTests: XCTestCase {
    private let wall = ManualClock(1_700_000_000_000)

    private func open(_ path: String) throws -> Replica {
        var options = ReplicaOptions()
        options.wallClock = wall.wallClock
        return try Replica(path: path, schema: TestSchema.tables, options: options)
    }

    /// A peer whose clock runs `ahead` milliseconds in front of ours (inside the drift bound).
    private func peer(ahead: UInt64) throws -> Replica {
        try openMemoryReplica(clock: ManualClock(wall.now + ahead))
    }

    func testInsertOnlyVersionAheadOfTheNewestRowIsNotForgottenOnReopen() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let future = try peer(ahead: 60_000)
        let present = try peer(ahead: 0)
        try future.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-future", [TestSchema.column("store"): .text("S1")]) }
        try present.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-now", [TestSchema.column("store"): .text("S1")]) }
        let futureVersion = try XCTUnwrap(rowVersion(future, TestSchema.visits, "visit-future"))

        var replica: Replica? = try open(path)
        // The future row first, then an older one: the newest sequence carries the older version.
        _ = try replica?.apply(try future.changes(since: 0), recordCursor: false)
        _ = try replica?.apply(try present.changes(since: 0), recordCursor: false)
        replica = nil

        let reopened = try open(path)
        XCTAssertGreaterThan(reopened.clock.now(), futureVersion.hlc, "the clock resumed below a version in the file")
        try reopened.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-local", [TestSchema.column("store"): .text("S1")]) }
        let local = try XCTUnwrap(rowVersion(reopened, TestSchema.visits, "visit-local"))
        XCTAssertGreaterThan(local, futureVersion, "a write after reopening orders after everything the replica held")
    }

    func testCellVersionAheadOfTheNewestRowIsNotForgottenOnReopen() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let stage = TestSchema.column("stage"), name = TestSchema.column("name")
        let present = try peer(ahead: 0)
        try present.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [name: .text("a")]) }

        var replica: Replica? = try open(path)
        _ = try replica?.apply(try present.changes(since: 0), recordCursor: false)
        // A peer 60 s ahead edits one cell of lead-1 (its life version stays the old one) ...
        let future = try peer(ahead: 60_000)
        _ = try future.apply(try present.changes(since: 0), recordCursor: false)
        try future.write { tx in try tx.update(TestSchema.leads, primaryKey: "lead-1", set: [stage: .text("demo")]) }
        let futureVersion = try XCTUnwrap(try future.write { tx in try tx.version(of: TestSchema.leads, primaryKey: "lead-1", column: stage) })
        _ = try replica?.apply(try future.changes(since: 0), recordCursor: false)
        // ... and a later-arriving row with an older version takes the newest sequence.
        try present.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-2", [name: .text("b")]) }
        _ = try replica?.apply(try present.changes(since: 0), recordCursor: false)
        replica = nil

        let reopened = try open(path)
        XCTAssertGreaterThan(reopened.clock.now(), futureVersion.hlc, "the clock resumed below a cell version in the file")
        try reopened.write { tx in try tx.update(TestSchema.leads, primaryKey: "lead-2", set: [stage: .text("won")]) }
        let local = try XCTUnwrap(try reopened.write { tx in try tx.version(of: TestSchema.leads, primaryKey: "lead-2", column: stage) })
        XCTAssertGreaterThan(local, futureVersion, "the guide's next edit orders after every version the replica held")
    }

    /// The clock high-water survives another process's merge too: a second connection on the
    /// same file catches up with it before its next write.
    func testAnotherConnectionsFutureMergeRaisesTheClockBeforeTheNextWrite() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let first = try open(path)
        let second = try open(path)
        let future = try peer(ahead: 90_000)
        let present = try peer(ahead: 0)
        try future.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-future", [TestSchema.column("store"): .text("S1")]) }
        try present.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-now", [TestSchema.column("store"): .text("S1")]) }
        let futureVersion = try XCTUnwrap(rowVersion(future, TestSchema.visits, "visit-future"))
        _ = try second.apply(try future.changes(since: 0), recordCursor: false)
        _ = try second.apply(try present.changes(since: 0), recordCursor: false)

        try first.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "visit-local", [TestSchema.column("store"): .text("S1")]) }
        let local = try XCTUnwrap(rowVersion(first, TestSchema.visits, "visit-local"))
        XCTAssertGreaterThan(local, futureVersion)
    }

    private func rowVersion(_ replica: Replica, _ table: TableName, _ key: String) throws -> Version? {
        var found: Version?
        try replica.forEachRowVersion(in: table) { candidate, version in
            if candidate == key { found = version }
        }
        return found
    }
}
