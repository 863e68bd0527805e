import CSQLite

/// An error reported by SQLite, with its result codes and message.
///
/// The SQL text is kept for context, but bound values never are: they may hold
/// customer names or phone numbers, which must not reach a log.
public struct SQLiteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Primary result code (`SQLITE_BUSY`, `SQLITE_CONSTRAINT`, ...).
    public let code: Int32
    /// Extended result code (`SQLITE_CONSTRAINT_PRIMARYKEY`, ...).
    public let extendedCode: Int32
    public let message: String
    public let sql: String?

    public init(code: Int32, extendedCode: Int32? = nil, message: String, sql: String? = nil) {
        self.code = code
        self.extendedCode = extendedCode ?? code
        self.message = message
        self.sql = sql
    }

    /// Reads the most recent error of a connection.
    init(connection: OpaquePointer, code: Int32, sql: String? = nil) {
        let extended = sqlite3_extended_errcode(connection)
        let message = sqlite3_errmsg(connection).map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.init(code: code & 0xff, extendedCode: extended, message: message, sql: sql)
    }

    public var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    /// The disk (or the quota) is full: the write was rolled back and nothing was lost.
    public var isDiskFull: Bool { code == SQLITE_FULL }

    public var description: String {
        var text = "SQLite error \(code)"
        if extendedCode != code { text += "/\(extendedCode)" }
        text += ": \(message)"
        if let sql { text += " (while executing: \(sql))" }
        return text
    }
}
