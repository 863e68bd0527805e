import Glibc

/// Failures of the file-level operations around a replica (backup, lock, reidentify) that are
/// not SQLite's: a script can tell them apart by case and by `category`.
public enum ReplicaFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `backup(to:)` never overwrites: the destination already exists.
    case destinationExists(path: String)
    /// Another process holds the replica's lock (`ReplicaLock`); who, when it said so.
    case locked(path: String, holder: ReplicaLock.Holder?)
    /// A system call failed.
    case system(operation: String, path: String, errno: Int32)

    public var category: SyncError.Category {
        switch self {
        case .destinationExists: return .refused
        case .locked: return .busy
        case .system(_, _, let code):
            switch code {
            case EACCES, EPERM, EROFS: return .permissionDenied
            case ENOSPC, EDQUOT: return .diskFull
            default: return .storage
            }
        }
    }

    /// A held lock frees up when its holder stops, a full disk when space is made.
    public var isRetryable: Bool { category == .busy || category == .diskFull }
    public var isPermissionDenied: Bool { category == .permissionDenied }

    public var description: String {
        switch self {
        case .destinationExists(let path): return "\(path) already exists; a backup never overwrites a file"
        case .locked(let path, let holder):
            guard let holder else { return "\(path) is in use by another process" }
            return "\(path) is in use by process \(holder.pid) (\(holder.command))"
        case .system(let operation, let path, let code):
            return "\(operation) \(path) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}

/// Runs a system call, retrying on `EINTR`; a result of -1 throws `.system` with `errno`.
@discardableResult
func systemCall(_ operation: String, path: String, _ call: () -> Int32) throws(ReplicaFileError) -> Int32 {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw ReplicaFileError.system(operation: operation, path: path, errno: code)
    }
}
