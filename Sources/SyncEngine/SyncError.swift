public import SQLite

/// Everything the engine can refuse, with enough context to act on and no personal data.
public enum SyncError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidName(String)
    case invalidReplicaID(byteCount: Int)
    /// A remote version is further ahead of our wall clock than the allowed drift.
    case clockSkew(remoteMilliseconds: UInt64, localMilliseconds: UInt64)
    case unknownTable(String)
    case unknownColumn(table: String, column: String)
    /// The schema on disk or in a changeset disagrees with the registered one.
    case schemaMismatch(table: String, reason: String)
    case rowNotFound(table: String, primaryKey: String)
    case rowExists(table: String, primaryKey: String)
    /// Rows of insert-only tables never change once written.
    case immutableTable(String)
    case invalidChangeset(String)
    case notAReplica(path: String)
    case storage(SQLiteError)

    public var description: String {
        switch self {
        case .invalidName(let name): return "invalid table or column name \"\(name)\": use [a-z_][a-z0-9_]*, not starting with sync_"
        case .invalidReplicaID(let count): return "a replica id is 16 bytes, got \(count)"
        case .clockSkew(let remote, let local):
            return "clock skew: remote version at \(remote) ms is \(remote &- local) ms ahead of local time \(local) ms"
        case .unknownTable(let table): return "unknown table \(table)"
        case .unknownColumn(let table, let column): return "unknown column \(column) in table \(table)"
        case .schemaMismatch(let table, let reason): return "schema of table \(table) does not match: \(reason)"
        case .rowNotFound(let table, let key): return "no row \(key) in \(table)"
        case .rowExists(let table, let key): return "row \(key) already exists in \(table)"
        case .immutableTable(let table): return "rows of insert-only table \(table) cannot be changed or deleted"
        case .invalidChangeset(let reason): return "invalid changeset: \(reason)"
        case .notAReplica(let path): return "\(path) is not a StoreSync replica"
        case .storage(let error): return error.description
        }
    }
}

extension SyncError {
    /// What a caller (a script, a retry loop, an exit code) can do about an error, without
    /// matching message text: a storage error is classified by its SQLite code and `errno`.
    public enum Category: String, Sendable, Hashable {
        /// Another connection or process holds the database's lock: retry later.
        case busy
        /// The disk or quota is full: nothing was written; retry once there is room.
        case diskFull
        /// The file or its directory may not be read or written (permissions, read-only file
        /// system): an operator must fix access; retrying changes nothing.
        case permissionDenied
        /// The file is not a StoreSync replica (not SQLite, damaged, or without the engine's tables).
        case notAReplica
        /// The request or the data was refused (unknown table, clock skew, bad changeset, ...).
        case refused
        /// Any other storage failure.
        case storage
    }

    public var category: Category {
        switch self {
        case .notAReplica: return .notAReplica
        case .storage(let error):
            switch error.category {
            case .busy: return .busy
            case .diskFull: return .diskFull
            case .permissionDenied: return .permissionDenied
            case .notADatabase: return .notAReplica
            case .constraint, .other: return .storage
            }
        case .invalidName, .invalidReplicaID, .clockSkew, .unknownTable, .unknownColumn, .schemaMismatch,
             .rowNotFound, .rowExists, .immutableTable, .invalidChangeset:
            return .refused
        }
    }

    /// Worth retrying unchanged later (busy database, full disk).
    public var isRetryable: Bool { category == .busy || category == .diskFull }
    public var isBusy: Bool { category == .busy }
    public var isDiskFull: Bool { category == .diskFull }
    public var isPermissionDenied: Bool { category == .permissionDenied }
    public var isNotAReplica: Bool { category == .notAReplica }

    /// The category of any error the engine or SQLite throws (`SyncError`, `ReplicaFileError`,
    /// `SQLiteError`); nil for anything else. The one classification callers share.
    public static func category(of error: any Error) -> Category? {
        switch error {
        case let error as SyncError: return error.category
        case let error as ReplicaFileError: return error.category
        case let error as SQLiteError: return SyncError.storage(error).category
        default: return nil
        }
    }
}

/// Runs work that may throw the caller's own errors: SQLite's become `SyncError.storage`, every
/// other error (a `SyncError`, a domain error thrown inside `Replica.write`) passes as itself.
@inline(__always)
func passingDomainErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SQLiteError {
        throw SyncError.storage(error)
    }
}

/// Runs SQLite work, turning its errors into `SyncError.storage`.
@inline(__always)
func storage<T>(_ body: () throws -> T) throws(SyncError) -> T {
    do {
        return try body()
    } catch let error as SyncError {
        throw error
    } catch let error as SQLiteError {
        throw SyncError.storage(error)
    } catch {
        throw SyncError.storage(SQLiteError(code: 1, message: String(describing: error)))
    }
}
