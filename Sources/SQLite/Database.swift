import CSQLite

/// One SQLite connection.
///
/// A connection is not thread-safe by itself: its owner (a serial queue or a lock)
/// serialises every use. It is opened in SQLite's multi-thread mode, so SQLite does
/// no locking of its own on top of that.
public final class Database {
    public struct Options: Sendable {
        /// Journal in write-ahead-log mode: readers never block the writer.
        public var walMode = true
        /// How long a statement waits for another connection's lock before `SQLITE_BUSY`.
        public var busyTimeoutMilliseconds: Int32 = 5_000
        /// `synchronous` pragma: `FULL` makes every commit durable on power loss;
        /// `NORMAL` (with WAL) survives a process crash but may lose the last commits on power loss.
        public var synchronous: Synchronous = .full
        public var readOnly = false
        /// Page cache per connection, in KiB. Large batches (a merge of a whole changeset)
        /// stay in memory until commit instead of spilling pages to the WAL twice.
        public var cacheSizeKiB: Int32 = 16 * 1024

        public enum Synchronous: String, Sendable { case off = "OFF", normal = "NORMAL", full = "FULL" }

        public init() {}
    }

    let handle: OpaquePointer
    public let path: String
    private var statementCache: [String: Statement] = [:]

    /// Opens (creating when missing, unless read-only) the database at `path`. `":memory:"` opens a private in-memory database.
    public init(path: String, options: Options = Options()) throws {
        var connection: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        flags |= options.readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let code = sqlite3_open_v2(path, &connection, flags, nil)
        guard let connection else {
            throw SQLiteError(code: SQLITE_NOMEM, message: "cannot allocate a connection for \(path)")
        }
        guard code == SQLITE_OK else {
            let error = SQLiteError(connection: connection, code: code)
            sqlite3_close_v2(connection)
            throw SQLiteError(code: error.code, extendedCode: error.extendedCode, message: "\(error.message) (opening \(path))",
                              systemErrno: error.systemErrno)
        }
        self.handle = connection
        self.path = path
        sqlite3_extended_result_codes(connection, 1)
        _ = storesync_db_config_defensive(connection, 1)
        do {
            sqlite3_busy_timeout(connection, options.busyTimeoutMilliseconds)
            // A write-protected file opens read-only without an error (`isReadOnly` tells the
            // caller); setting its journal mode would fail with a message that hides why.
            let writable = !options.readOnly && sqlite3_db_readonly(connection, "main") != 1
            if options.walMode && path != ":memory:" && writable {
                try execute("PRAGMA journal_mode=WAL")
            }
            if writable {
                try execute("PRAGMA synchronous=\(options.synchronous.rawValue)")
            }
            try execute("PRAGMA cache_size=-\(max(0, options.cacheSizeKiB))")
        } catch {
            statementCache.removeAll()
            sqlite3_close_v2(connection)
            throw error
        }
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that take no parameters (schema, pragmas).
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(errorMessage)
            throw SQLiteError(code: code & 0xff, extendedCode: sqlite3_extended_errcode(handle), message: message, sql: sql,
                              systemErrno: sqlite3_system_errno(handle))
        }
    }

    /// Prepares a new statement.
    public func prepare(_ sql: String) throws -> Statement {
        try Statement(connection: handle, sql: sql)
    }

    /// Returns a prepared statement for `sql`, preparing it once per connection.
    public func cachedStatement(_ sql: String) throws -> Statement {
        if let statement = statementCache[sql] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql)
        statementCache[sql] = statement
        return statement
    }

    /// Convenience: runs a parameterised statement through the cache.
    public func run(_ sql: String, _ values: [SQLValue] = []) throws {
        try cachedStatement(sql).execute(values)
    }

    /// Convenience: the rows of a parameterised query.
    public func fetchAll(_ sql: String, _ values: [SQLValue] = []) throws -> [[SQLValue]] {
        try cachedStatement(sql).fetchAll(values)
    }

    /// Convenience: the first column of the first row, or nil when there is no row.
    public func fetchScalar(_ sql: String, _ values: [SQLValue] = []) throws -> SQLValue? {
        try cachedStatement(sql).fetchOne(values)?.first
    }

    /// Rows modified by the most recent INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes64(handle)) }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// True when no transaction is open.
    public var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    // MARK: Transactions

    public enum TransactionKind: String, Sendable {
        case deferred = "DEFERRED"
        /// Takes the write lock at once, so the transaction never fails half-way with SQLITE_BUSY on upgrade.
        case immediate = "IMMEDIATE"
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T {
        guard isAutocommit else {
            throw SQLiteError(code: SQLITE_MISUSE, message: "a transaction is already open on this connection")
        }
        try execute("BEGIN \(kind.rawValue)")
        let result: T
        do {
            result = try body()
            try execute("COMMIT")
        } catch {
            if !isAutocommit {
                // A failed ROLLBACK leaves nothing more to undo; the original error is the one to report.
                try? execute("ROLLBACK")
            }
            throw error
        }
        return result
    }

    /// True when the main database is open read-only: asked for, or SQLite fell back to it because
    /// the file may not be written (it opens a write-protected file read-only without an error).
    public var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }

    // MARK: Write-ahead log and copies

    /// What a checkpoint did: `complete` when every frame of the WAL is in the main file.
    public struct CheckpointResult: Sendable, Equatable {
        public var walFrames: Int
        public var checkpointedFrames: Int
        public var complete: Bool
    }

    public enum CheckpointMode: Int32, Sendable {
        case passive = 0, full = 1, restart = 2
        /// Copies every frame into the main file and truncates the WAL to zero bytes, so the main
        /// file alone holds every committed transaction.
        case truncate = 3
    }

    /// Runs a WAL checkpoint on the main database. Another connection's open read transaction
    /// can keep it from completing (`complete` is then false); it never fails for that alone.
    @discardableResult
    public func checkpoint(_ mode: CheckpointMode) throws -> CheckpointResult {
        var log: Int32 = 0
        var done: Int32 = 0
        let code = sqlite3_wal_checkpoint_v2(handle, "main", mode.rawValue, &log, &done)
        switch code {
        case SQLITE_OK:
            // Not in WAL mode: both counts are -1 and there is nothing to merge.
            return CheckpointResult(walFrames: Int(max(0, log)), checkpointedFrames: Int(max(0, done)), complete: log == done)
        case SQLITE_BUSY:
            return CheckpointResult(walFrames: Int(max(0, log)), checkpointedFrames: Int(max(0, done)), complete: false)
        default:
            throw SQLiteError(connection: handle, code: code, sql: "wal_checkpoint")
        }
    }

    /// Writes a compacted, consistent copy of the database to `path` (`VACUUM INTO`), from one
    /// read snapshot: other connections keep writing meanwhile, and free pages (which may still
    /// hold erased personal data) are not copied. `path` must not exist. Works on a read-only
    /// connection. The copy is not synced to disk: the caller syncs it.
    public func vacuum(into path: String) throws {
        try prepare("VACUUM INTO ?").execute([.text(path)])
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound, otherwise SQLite's findings.
    public func integrityCheck() throws -> String {
        let rows = try prepare("PRAGMA integrity_check").fetchAll()
        return rows.compactMap { $0.first?.textValue }.joined(separator: "\n")
    }
}
