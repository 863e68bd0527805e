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
