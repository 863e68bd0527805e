import Foundation
import Logging
import SQLite
import SyncEngine

/// What the CLI does to a replica file as a file, on the engine's operations: one long-running
/// process per file (`ReplicaLock`), the WAL merged into the main file on a clean stop
/// (`Replica.close()`), online backups (`Replica.backup(to:)`) and a new identity by hand
/// (`Replica.reidentify(path:)`).

/// Takes the replica's lock for this long-running command (`storesync hub`, `sync --live`), or
/// throws `in_use` naming the process that holds it. The kernel drops it when the process ends,
/// even by `kill -9`; short commands take no lock (SQLite serialises their writes).
func lockReplica(_ path: String) throws -> ReplicaLock {
    do {
        return try ReplicaLock.acquire(path: path, holder: lockHolderDescription())
    } catch {
        if case .locked = error {
            throw CommandError("\(error.description); one process serves a replica file at a time, stop it first", kind: .inUse)
        }
        throw CommandError("cannot lock \(path): \(error.description)", kind: FailureKind(error.category))
    }
}

/// The command line that took a lock, for the lock file: the subcommand and its options, never
/// values that could be personal (a long-running command has none; its options are paths and
/// addresses).
func lockHolderDescription() -> String {
    (["storesync"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
}

/// A clean stop leaves the replica in its main file alone: `close()` merges the write-ahead log
/// into it (a cold copy of the main file then holds every committed row).
func closeOnStop(_ replica: Replica, logger: Logger) {
    do {
        if try !replica.close() {
            logger.warning("the write-ahead log was not fully merged into the replica file (another process was reading it)")
        }
    } catch {
        logger.warning("cannot merge the write-ahead log into the replica file", [("error", "\(error)")])
    }
}

/// An online, consistent copy of `replica` at `target` (`Replica.backup(to:)`: one read snapshot,
/// marked as a backup so that its first open as a replica gives it a new identity), then SQLite's
/// integrity check of the copy.
func backUp(_ replica: Replica, to target: String) throws {
    do {
        try replica.backup(to: target)
    } catch let error as ReplicaFileError {
        if case .destinationExists = error { throw CommandError("\(target) exists; a backup goes to a new file") }
        throw CommandError("cannot write the backup to \(target): \(error.description)", kind: FailureKind(error.category))
    } catch let error as SyncError {
        throw CommandError("cannot write the backup to \(target): \(error.description)", kind: FailureKind(error.category))
    }
    let check: String
    do {
        check = try Database(path: target).integrityCheck()
    } catch let error as SQLiteError {
        throw CommandError("cannot check the backup at \(target): \(error.description)", kind: FailureKind(SyncError.storage(error).category))
    }
    guard check == "ok" else {
        throw CommandError("the backup at \(target) failed its integrity check")
    }
}
