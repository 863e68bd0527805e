import CSQLite
import Foundation
import XCTest
@testable import SQLite

/// The SQLite wrapper: values, statements, errors, transactions and connection settings.
/// Every test works on its own database file in its own temporary directory.
final class DatabaseTests: XCTestCase {
    private var directory: URL?

    override func setUpWithError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-sqlite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        directory = url
    }

    override func tearDownWithError() throws {
        if let directory {
            try FileManager.default.removeItem(at: directory)
        }
        directory = nil
    }

    /// The path of this test's database file (the same path on every call).
    private func databasePath() throws -> String {
        try XCTUnwrap(directory).appendingPathComponent("test.sqlite").path
    }

    private func openDatabase(_ configure: (inout Database.Options) -> Void = { _ in }) throws -> Database {
        var options = Database.Options()
        configure(&options)
        return try Database(path: try databasePath(), options: options)
    }

    /// Runs `body`, which must throw an `SQLiteError`, and returns that error.
    private func sqliteError(
        _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line
    ) throws -> SQLiteError {
        do {
            try body()
        } catch let error as SQLiteError {
            return error
        }
        XCTFail("expected an SQLiteError", file: file, line: line)
        throw NoErrorThrown()
    }

    private struct NoErrorThrown: Error {}

    // MARK: Values

    /// Writes `value` into an untyped column (no affinity, so nothing is converted) and reads it back.
    private func roundTrip(_ value: SQLValue, in database: Database) throws -> SQLValue {
        try database.run("DELETE FROM t")
        try database.run("INSERT INTO t (v) VALUES (?)", [value])
        let rows = try database.fetchAll("SELECT v FROM t")
        XCTAssertEqual(rows.count, 1)
        return try XCTUnwrap(rows.first?.first)
    }

    func testEveryStorageClassRoundTrips() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        let nonASCII = "Zoë 王小明 — e\u{301} 📞"
        let values: [SQLValue] = [
            .null,
            .integer(0), .integer(-1), .integer(.min), .integer(.max),
            .real(1.5), .real(-.greatestFiniteMagnitude), .real(.leastNonzeroMagnitude), .real(.infinity),
            .text(""), .text(nonASCII), .text("nul \u{0} inside"),
            .blob([0, 1, 2, 0, 255]),
        ]
        for value in values {
            XCTAssertEqual(try roundTrip(value, in: database), value, "\(value)")
        }
        // String equality is canonical equivalence: also compare the bytes (no normalisation happened).
        XCTAssertEqual(try roundTrip(.text(nonASCII), in: database).textValue.map { Array($0.utf8) }, Array(nonASCII.utf8))
    }

    func testEmptyTextAndEmptyBlobAreNotNull() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        XCTAssertEqual(try roundTrip(.text(""), in: database), .text(""))
        // SQLite hands back a NULL pointer for a zero-length blob; it must read as an empty blob.
        XCTAssertEqual(try roundTrip(.blob([]), in: database), .blob([]))
        XCTAssertEqual(try database.fetchScalar("SELECT typeof(v) || length(v) FROM t"), .text("blob0"))
        try database.prepare("SELECT v FROM t").forEachRow { row in
            XCTAssertFalse(row.isNull(0))
            XCTAssertEqual(row.blob(0), [])
            XCTAssertEqual(row.withBlob(0) { $0.count }, 0)
        }
    }

    func testNegativeZeroKeepsItsSignAndNaNBecomesNull() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        let negativeZero = try XCTUnwrap(try roundTrip(.real(-0.0), in: database).realValue)
        XCTAssertEqual(negativeZero, 0)
        XCTAssertEqual(negativeZero.sign, .minus)
        // SQLite has no NaN: it stores NULL. The point is that binding it neither crashes nor fails.
        XCTAssertEqual(try roundTrip(.real(.nan), in: database), .null)
    }

    func testLargeBlobRoundTrips() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
        // 3 MiB spanning many overflow pages; a position-dependent pattern catches shifted or truncated bytes.
        let bytes = [UInt8](unsafeUninitializedCapacity: 3 << 20) { buffer, count in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: (index &* 2_654_435_761) >> 13) }
            count = buffer.count
        }
        XCTAssertEqual(try roundTrip(.blob(bytes), in: database), .blob(bytes))
    }

    // MARK: Preparing

    func testBlankOrCommentOnlySQLThrowsInsteadOfCrashing() throws {
        let database = try openDatabase()
        for sql in ["", "   \n\t", "-- only a comment", "/* only a comment */", ";"] {
            let error = try sqliteError { _ = try database.prepare(sql) }
            XCTAssertEqual(error.code, SQLITE_MISUSE, sql)
            XCTAssertEqual(error.sql, sql)
        }
    }

    func testSyntaxErrorCarriesCodeAndSQL() throws {
        let database = try openDatabase()
        let sql = "SELEC 1 FROM nowhere"
        let prepareError = try sqliteError { _ = try database.prepare(sql) }
        XCTAssertEqual(prepareError.code, SQLITE_ERROR)
        XCTAssertEqual(prepareError.sql, sql)
        XCTAssertTrue(prepareError.message.contains("syntax error"), prepareError.message)
        XCTAssertTrue(prepareError.description.contains(sql), prepareError.description)

        let executeError = try sqliteError { try database.execute(sql) }
        XCTAssertEqual(executeError.code, SQLITE_ERROR)
        XCTAssertEqual(executeError.sql, sql)
    }

    // MARK: Errors

    func testConstraintViolationsReportExtendedCodesWithoutTheBoundValues() throws {
        let database = try openDatabase()
        try database.execute("""
            CREATE TABLE customer (
                phone TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                email TEXT UNIQUE,
                age INTEGER CHECK (age >= 0)
            )
            """)
        let phone = "+86 138 0013 8000"
        let name = "王小明"
        let insert = "INSERT INTO customer (phone, name, email, age) VALUES (?, ?, ?, ?)"
        try database.run(insert, [.text(phone), .text(name), .text("xm@example.com"), .integer(30)])

        let cases: [(values: [SQLValue], extendedCode: Int32)] = [
            ([.text(phone), .text(name), .text("other@example.com"), .integer(30)], 1555),  // SQLITE_CONSTRAINT_PRIMARYKEY
            ([.text("+86 139 0000 0000"), .null, .null, .integer(30)], 1299),             // SQLITE_CONSTRAINT_NOTNULL
            ([.text("+86 139 0000 0001"), .text(name), .text("xm@example.com"), .null], 2067),  // SQLITE_CONSTRAINT_UNIQUE
            ([.text("+86 139 0000 0002"), .text(name), .null, .integer(-4)], 275),        // SQLITE_CONSTRAINT_CHECK
        ]
        for (values, extendedCode) in cases {
            let error = try sqliteError { try database.run(insert, values) }
            XCTAssertEqual(error.code, 19)
            XCTAssertEqual(error.code, SQLITE_CONSTRAINT)
            XCTAssertEqual(error.extendedCode, extendedCode)
            XCTAssertTrue(error.isConstraintViolation)
            XCTAssertFalse(error.isBusy)
            XCTAssertEqual(error.sql, insert)
            XCTAssertTrue(error.description.contains("\(extendedCode)"), error.description)
            for case .text(let bound) in values {
                XCTAssertFalse(error.description.contains(bound), "description leaks a bound value: \(error.description)")
                XCTAssertFalse(error.message.contains(bound), "message leaks a bound value: \(error.message)")
            }
        }
        // A failed step resets the cached statement: it runs again with other values.
        try database.run(insert, [.text("+86 139 0000 0003"), .text("ok"), .null, .integer(1)])
        XCTAssertEqual(try database.fetchScalar("SELECT count(*) FROM customer"), .integer(2))
    }

    // MARK: Transactions

    func testTransactionCommitsWhenTheBodyReturns() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        let result = try database.transaction {
            try database.run("INSERT INTO t (v) VALUES (?)", [.text("kept")])
            XCTAssertFalse(database.isAutocommit)
            return 42
        }
        XCTAssertEqual(result, 42)
        XCTAssertTrue(database.isAutocommit)
        // Committed means another connection sees it.
        let other = try openDatabase()
        XCTAssertEqual(try other.fetchAll("SELECT v FROM t"), [[.text("kept")]])
    }

    func testTransactionRollsBackWhenTheBodyThrows() throws {
        struct Abort: Error {}
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        XCTAssertThrowsError(try database.transaction {
            try database.run("INSERT INTO t (v) VALUES (?)", [.text("discarded")])
            XCTAssertEqual(try database.fetchScalar("SELECT count(*) FROM t"), .integer(1))
            throw Abort()
        }) { XCTAssertTrue($0 is Abort, "the body's error is rethrown, got \($0)") }
        XCTAssertTrue(database.isAutocommit)
        XCTAssertEqual(try database.fetchScalar("SELECT count(*) FROM t"), .integer(0))
        XCTAssertEqual(try openDatabase().fetchScalar("SELECT count(*) FROM t"), .integer(0))
    }

    func testTransactionRollsBackWhenAStatementFails() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        let error = try sqliteError {
            try database.transaction {
                try database.run("INSERT INTO t (v) VALUES (?)", [.text("first")])
                try database.run("INSERT INTO t (v) VALUES (?)", [.null])
            }
        }
        XCTAssertEqual(error.extendedCode, 1299)
        XCTAssertTrue(database.isAutocommit)
        XCTAssertEqual(try database.fetchScalar("SELECT count(*) FROM t"), .integer(0))
    }

    func testNestedTransactionIsRefusedAndTheOuterOneStillCommits() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        try database.transaction {
            try database.run("INSERT INTO t (v) VALUES (?)", [.text("outer")])
            let error = try sqliteError {
                try database.transaction { try database.run("INSERT INTO t (v) VALUES (?)", [.text("inner")]) }
            }
            XCTAssertEqual(error.code, SQLITE_MISUSE)
            XCTAssertFalse(database.isAutocommit, "refusing the inner transaction must not end the outer one")
        }
        XCTAssertEqual(try openDatabase().fetchAll("SELECT v FROM t"), [[.text("outer")]])
    }

    // MARK: Connection settings

    func testFileDatabasesUseWriteAheadLogging() throws {
        let database = try openDatabase()
        XCTAssertEqual(try database.fetchScalar("PRAGMA journal_mode"), .text("wal"))
        XCTAssertEqual(try database.fetchScalar("PRAGMA synchronous"), .integer(2))  // FULL

        let memory = try Database(path: ":memory:")
        XCTAssertEqual(try memory.fetchScalar("PRAGMA journal_mode"), .text("memory"))
    }

    func testWriterWaitsOnlyItsBusyTimeoutThenReportsBusy() throws {
        let holder = try openDatabase()
        try holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        let waiter = try openDatabase { $0.busyTimeoutMilliseconds = 50 }
        try holder.execute("BEGIN IMMEDIATE")

        let start = ContinuousClock.now
        let error = try sqliteError { try waiter.run("INSERT INTO t (v) VALUES (?)", [.text("blocked")]) }
        let waited = ContinuousClock.now - start
        XCTAssertTrue(error.isBusy, error.description)
        XCTAssertEqual(error.code, SQLITE_BUSY)
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(40), "SQLite gave up before the busy timeout")
        XCTAssertLessThan(waited, .seconds(3), "the connection waited for the 5 s default, not its own 50 ms")
        // Readers are not blocked by the writer in WAL mode.
        XCTAssertEqual(try waiter.fetchScalar("SELECT count(*) FROM t"), .integer(0))

        try holder.execute("COMMIT")
        try waiter.run("INSERT INTO t (v) VALUES (?)", [.text("after")])
        XCTAssertEqual(try holder.fetchScalar("SELECT count(*) FROM t"), .integer(1))
    }

    func testCachedStatementIsReusedAndStartsOverEachTime() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        let insert = try database.cachedStatement("INSERT INTO t (v) VALUES (?)")
        try insert.execute([.text("a")])
        let again = try database.cachedStatement("INSERT INTO t (v) VALUES (?)")
        XCTAssertTrue(insert === again)
        try again.execute([.text("b")])

        let select = try database.cachedStatement("SELECT v FROM t ORDER BY id")
        XCTAssertEqual(select.columnCount, 1)
        XCTAssertEqual(select.columnName(at: 0), "v")
        XCTAssertTrue(try select.step())
        XCTAssertEqual(select.text(at: 0), "a")
        // Left mid-iteration: taken from the cache again, it starts from the first row.
        let reused = try database.cachedStatement("SELECT v FROM t ORDER BY id")
        XCTAssertTrue(select === reused)
        XCTAssertEqual(try reused.fetchAll(), [[.text("a")], [.text("b")]])
        XCTAssertFalse(try database.cachedStatement("SELECT v FROM t WHERE v = ?") === database.cachedStatement("SELECT v FROM t"))
    }

    func testFreshDatabasePassesIntegrityCheck() throws {
        let database = try openDatabase()
        XCTAssertEqual(try database.integrityCheck(), "ok")
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v)")
        try database.transaction {
            for index in 0..<500 { try database.run("INSERT INTO t (v) VALUES (?)", [.text("row \(index)")]) }
        }
        XCTAssertEqual(try database.integrityCheck(), "ok")
    }

    // MARK: Checkpoints, copies, read-only files, errno

    /// A truncating checkpoint leaves the main file holding every commit: a copy of it alone
    /// (no `-wal`) has every row while the writer is still open.
    func testTruncatingCheckpointPutsEveryCommitInTheMainFile() throws {
        let database = try openDatabase()
        try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for index in 0..<50 { try database.run("INSERT INTO t (v) VALUES (?)", [.text("row \(index)")]) }
        let result = try database.checkpoint(.truncate)
        XCTAssertTrue(result.complete)
        let wal = try databasePath() + "-wal"
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue, 0)
        let copy = try XCTUnwrap(directory).appendingPathComponent("copy.sqlite").path
        try FileManager.default.copyItem(atPath: try databasePath(), toPath: copy)
        XCTAssertEqual(try Database(path: copy).fetchScalar("SELECT count(*) FROM t"), .integer(50))

        // Not in WAL mode: nothing to merge, and no error.
        XCTAssertTrue(try Database(path: ":memory:").checkpoint(.truncate).complete)
    }

    /// `vacuum(into:)` copies one snapshot from a read-only connection while another writes,
    /// and refuses an existing destination.
    func testVacuumIntoCopiesOneSnapshotFromAReadOnlyConnection() throws {
        let writer = try openDatabase()
        try writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        try writer.run("INSERT INTO t (v) VALUES (?)", [.text("committed")])
        let reader = try openDatabase { $0.readOnly = true }
        XCTAssertTrue(reader.isReadOnly)
        XCTAssertFalse(writer.isReadOnly)
        try writer.execute("BEGIN IMMEDIATE")
        try writer.run("INSERT INTO t (v) VALUES (?)", [.text("open transaction")])
        let copy = try XCTUnwrap(directory).appendingPathComponent("copy.sqlite").path
        try reader.vacuum(into: copy)
        try writer.execute("COMMIT")
        let copied = try Database(path: copy)
        XCTAssertEqual(try copied.fetchAll("SELECT v FROM t"), [[.text("committed")]])
        XCTAssertEqual(try copied.integrityCheck(), "ok")
        XCTAssertThrowsError(try reader.vacuum(into: copy), "an existing file is never overwritten")
    }

    func testOpenFailuresCarryErrnoAndACategory() throws {
        let missing = try XCTUnwrap(directory).appendingPathComponent("no/such/dir/x.sqlite").path
        let error = try sqliteError { _ = try Database(path: missing) }
        XCTAssertEqual(error.code, SQLITE_CANTOPEN)
        XCTAssertEqual(error.systemErrno, ENOENT)
        XCTAssertEqual(error.category, .permissionDenied, "cannot open: an operator must fix the path or its access")
        XCTAssertTrue(error.description.contains("No such file or directory"), error.description)
        XCTAssertFalse(error.isRetryable)
    }
}
