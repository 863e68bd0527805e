import Foundation
import SQLite
import XCTest
@testable import SyncEngine

/// Errors a script can act on: busy, disk full, permission denied and "not a replica" are told
/// apart by category, never by message text, and a file that may not be written is never
/// reported as "not a replica".
final class StorageErrorTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory()
        // Children dropped to another user must reach the files.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    /// Opens `file` in a child process (as uid 65534 when the suite runs as root, so file
    /// permissions apply) and returns its one-line report.
    private func probe(_ file: String) throws -> String {
        let child = try ChildRun.start(try crashWriterExecutable(for: self), ["--probe-open", "--db", file, "--as-nobody"],
                                       in: try makeTemporaryDirectory(), name: "probe")
        let result = child.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func makeReplica(_ file: String) throws {
        let replica = try Replica(path: path(file), schema: TestSchema.tables)
        try replica.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-1", [TestSchema.column("name"): .text("a")]) }
        try replica.close()
    }

    func testAReplicaFileOfMode0400IsPermissionDeniedNotNotAReplica() throws {
        try makeReplica("r.sqlite")
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: path("r.sqlite"))
        let report = try probe(path("r.sqlite"))
        XCTAssertTrue(report.hasPrefix("error permissionDenied false"), report)
        XCTAssertFalse(report.contains("not a StoreSync replica"), report)
        XCTAssertTrue(report.contains("permission"), report)
    }

    func testAReadableButWriteProtectedReplicaIsPermissionDenied() throws {
        try makeReplica("r.sqlite")
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path("r.sqlite"))
        let report = try probe(path("r.sqlite"))
        XCTAssertTrue(report.hasPrefix("error permissionDenied false"), report)
        XCTAssertTrue(report.contains("permission"), report)
    }

    func testADirectoryWithoutWritePermissionIsPermissionDenied() throws {
        let folder = directory.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let file = folder.appendingPathComponent("r.sqlite").path
        let replica = try Replica(path: file, schema: TestSchema.tables)
        try replica.close()
        // The file itself may be written; its directory, where SQLite creates -wal and -shm, not.
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path) }
        let report = try probe(file)
        XCTAssertTrue(report.hasPrefix("error permissionDenied false"), report)
    }

    func testAFileThatIsNotADatabaseIsNotAReplica() throws {
        XCTAssertTrue(FileManager.default.createFile(atPath: path("notes.txt"), contents: Data(repeating: 0x41, count: 8192)))
        XCTAssertThrowsError(try Replica(path: path("notes.txt"), schema: TestSchema.tables)) { error in
            let error = error as? SyncError
            XCTAssertEqual(error?.category, .notAReplica, "\(String(describing: error))")
            XCTAssertEqual(error?.isRetryable, false)
        }
    }

    func testABusyDatabaseIsRetryable() throws {
        try makeReplica("r.sqlite")
        var options = ReplicaOptions()
        options.busyTimeoutMilliseconds = 0
        let replica = try Replica(path: path("r.sqlite"), schema: TestSchema.tables, options: options)
        let other = try Database(path: path("r.sqlite"))
        try other.execute("BEGIN IMMEDIATE")
        defer { try? other.execute("ROLLBACK") }
        XCTAssertThrowsError(try replica.write { tx in
            try tx.insert(into: TestSchema.leads, primaryKey: "lead-2", [TestSchema.column("name"): .text("b")])
        }) { error in
            let error = error as? SyncError
            XCTAssertEqual(error?.category, .busy, "\(String(describing: error))")
            XCTAssertEqual(error?.isRetryable, true)
        }
    }

    /// A full disk, made real with `max_page_count`: the write rolls back, the error says so
    /// and is retryable, and the replica keeps working once there is room.
    func testAFullDiskIsRetryableAndLosesNothing() throws {
        let replica = try Replica(path: path("r.sqlite"), schema: TestSchema.tables)
        let pages = try replica.write { tx in try tx.database.fetchScalar("PRAGMA page_count")?.integerValue ?? 0 }
        XCTAssertThrowsError(try replica.write { tx in
            try tx.database.execute("PRAGMA max_page_count = \(pages + 2)")
            for index in 0..<2_000 {
                try tx.insert(into: TestSchema.leads, primaryKey: "lead-\(index)",
                              [TestSchema.column("name"): .text(String(repeating: "x", count: 200))])
            }
        }) { error in
            let error = error as? SyncError
            XCTAssertEqual(error?.category, .diskFull, "\(String(describing: error))")
            XCTAssertEqual(error?.isRetryable, true)
        }
        XCTAssertEqual(replica.latestSequence, 0, "nothing of the failed transaction stayed")
        try replica.write { tx in
            try tx.database.execute("PRAGMA max_page_count = 1073741823")
            try tx.insert(into: TestSchema.leads, primaryKey: "lead-ok", [TestSchema.column("name"): .text("a")])
        }
        XCTAssertEqual(replica.latestSequence, 1)
    }

    func testCategoriesOfSQLiteCodesAndErrno() {
        XCTAssertEqual(SQLiteError(code: 5, message: "busy").category, .busy)
        XCTAssertEqual(SQLiteError(code: 6, message: "locked").category, .busy)
        XCTAssertEqual(SQLiteError(code: 13, message: "full").category, .diskFull)
        XCTAssertEqual(SQLiteError(code: 10, extendedCode: 778, message: "disk I/O error", systemErrno: ENOSPC).category, .diskFull)
        XCTAssertEqual(SQLiteError(code: 14, message: "unable to open", systemErrno: EACCES).category, .permissionDenied)
        XCTAssertEqual(SQLiteError(code: 8, message: "readonly").category, .permissionDenied)
        XCTAssertEqual(SQLiteError(code: 26, message: "not a database").category, .notADatabase)
        XCTAssertEqual(SyncError.storage(SQLiteError(code: 26, message: "x")).category, .notAReplica)
        XCTAssertEqual(SyncError.notAReplica(path: "x").category, .notAReplica)
        XCTAssertEqual(SyncError.clockSkew(remoteMilliseconds: 2, localMilliseconds: 1).category, .refused)
        XCTAssertTrue(SyncError.storage(SQLiteError(code: 13, message: "full")).isRetryable)
        XCTAssertFalse(SyncError.storage(SQLiteError(code: 8, message: "readonly")).isRetryable)
        XCTAssertTrue("\(SQLiteError(code: 14, message: "unable to open", systemErrno: EACCES))".contains("Permission denied"))
    }
}
