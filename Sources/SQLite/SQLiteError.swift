import CSQLite
import Glibc

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
    /// The operating system's `errno` behind an I/O or open failure (`EACCES`, `ENOSPC`), 0 when none.
    public let systemErrno: Int32

    public init(code: Int32, extendedCode: Int32? = nil, message: String, sql: String? = nil, systemErrno: Int32 = 0) {
        self.code = code
        self.extendedCode = extendedCode ?? code
        self.message = message
        self.sql = sql
        self.systemErrno = systemErrno
    }

    /// Reads the most recent error of a connection.
    init(connection: OpaquePointer, code: Int32, sql: String? = nil) {
        let extended = sqlite3_extended_errcode(connection)
        let message = sqlite3_errmsg(connection).map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.init(code: code & 0xff, extendedCode: extended, message: message, sql: sql,
                  systemErrno: sqlite3_system_errno(connection))
    }

    /// What a caller (a script, a retry loop) can do about an error.
    public enum Category: String, Sendable, Hashable {
        /// Another connection holds the lock (`SQLITE_BUSY`, `SQLITE_LOCKED`): retry later.
        case busy
        /// The disk or the quota is full (`SQLITE_FULL`, `ENOSPC`, `EDQUOT`): the write was rolled
        /// back and nothing was lost; retry once there is room.
        case diskFull
        /// The file cannot be opened (missing directory, no permission), or it or its directory
        /// may not be read or written by this user, or the file system is read-only
        /// (`SQLITE_READONLY`, `SQLITE_CANTOPEN`, `SQLITE_PERM`, `EACCES`, `EPERM`, `EROFS`): an
        /// operator must fix access; retrying unchanged does not help.
        case permissionDenied
        /// The file is not an SQLite database (`SQLITE_NOTADB`) or is damaged (`SQLITE_CORRUPT`).
        case notADatabase
        /// A constraint refused the statement.
        case constraint
        case other
    }

    public var category: Category {
        switch systemErrno {
        case ENOSPC, EDQUOT: return .diskFull
        case EACCES, EPERM, EROFS:
            if code == SQLITE_CANTOPEN || code == SQLITE_IOERR || code == SQLITE_READONLY || code == SQLITE_PERM { return .permissionDenied }
        default: break
        }
        switch code {
        case SQLITE_BUSY, SQLITE_LOCKED: return .busy
        case SQLITE_FULL: return .diskFull
        case SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_AUTH: return .permissionDenied
        case SQLITE_NOTADB, SQLITE_CORRUPT: return .notADatabase
        case SQLITE_CONSTRAINT: return .constraint
        default: return .other
        }
    }

    public var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }
    public var isBusy: Bool { category == .busy }
    /// The disk (or the quota) is full: the write was rolled back and nothing was lost.
    public var isDiskFull: Bool { category == .diskFull }
    public var isPermissionDenied: Bool { category == .permissionDenied }
    /// Worth retrying unchanged later: the lock or the disk space may free up.
    public var isRetryable: Bool { category == .busy || category == .diskFull }

    public var description: String {
        var text = "SQLite error \(code)"
        if extendedCode != code { text += "/\(extendedCode)" }
        text += ": \(message)"
        if systemErrno != 0, let reason = strerror(systemErrno) { text += " (\(String(cString: reason)))" }
        if let sql { text += " (while executing: \(sql))" }
        return text
    }
}
