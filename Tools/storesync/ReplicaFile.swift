import Foundation
import Glibc
import SQLite
import SyncEngine

/// What the CLI does to a replica file as a file: one long-running process per file (an
/// advisory lock), the WAL merged into the main file on a clean stop, and online backups.
///
/// Seams: the engine is to provide the lock and `Replica.backup(to:)`; until it does they live
/// here, with the same behaviour (`storesync` is the only caller).

/// An exclusive advisory lock (`flock`) on `DB.lock` beside the replica, held by `storesync hub`
/// and `storesync sync --live` for as long as they run (the kernel drops it when the process
/// ends, even by `kill -9`). The lock file names its holder (pid and command) so a second one
/// can say who holds it. Short commands (`lead add`, `status`, `backup`) take no lock: SQLite
/// serialises their writes with the running process's.
final class ReplicaFileLock {
    private let descriptor: Int32
    let path: String

    /// Takes the lock of the replica at `replicaPath` for `command`, or throws `in_use` naming
    /// the process that holds it.
    init(replicaPath: String, command: String) throws {
        path = replicaPath + ".lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let code = errno
            throw CommandError("cannot open the lock file \(path): \(String(cString: strerror(code)))",
                               kind: code == EACCES || code == EPERM || code == EROFS ? .permissionDenied : .failed)
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.holder(descriptor)
            close(descriptor)
            guard code == EWOULDBLOCK else {
                throw CommandError("cannot lock \(path): \(String(cString: strerror(code)))")
            }
            throw CommandError("\(replicaPath) is in use by \(holder ?? "another process"); one process serves a replica file at a time, stop it first",
                               kind: .inUse)
        }
        self.descriptor = descriptor
        let text = "pid \(getpid())\ncommand \(command)\n"
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    /// "pid N (storesync hub …)" from a lock file's content.
    private static func holder(_ descriptor: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        var pid: String?
        var command: String?
        for line in String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("pid ") { pid = String(line.dropFirst(4)) }
            if line.hasPrefix("command ") { command = String(line.dropFirst(8)) }
        }
        guard let pid else { return nil }
        return "pid \(pid)" + (command.map { " (\($0))" } ?? "")
    }
}

/// The command line that took a lock, for the lock file: the subcommand and its options, never
/// values that could be personal (a long-running command has none; its options are paths and
/// addresses).
func lockHolderDescription() -> String {
    (["storesync"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
}

/// Merges the write-ahead log into the main file (a clean stop leaves a self-contained file:
/// a cold copy of it alone then holds every committed row).
func checkpointWAL(_ replica: Replica) throws {
    try replica.read { database in
        _ = try database.fetchAll("PRAGMA wal_checkpoint(TRUNCATE)")
    }
}

/// An online, consistent copy of `replica` at `target` (SQLite's `VACUUM INTO`: one read
/// transaction, so concurrent writers neither block nor tear it), marked as a backup of its
/// replica (`sync_state` `restored_from` = the replica id in hex): the first open of the copy
/// as a replica gives it a new replica id, so a restored file never poses as the replica that
/// went on without it (coord.md, protocol version 2, "Restores").
func backUp(_ replica: Replica, to target: String) throws {
    guard !FileManager.default.fileExists(atPath: target) else {
        throw CommandError("\(target) exists; a backup goes to a new file")
    }
    do {
        try replica.read { database in
            try database.run("VACUUM INTO ?", [.text(target)])
        }
    } catch let error as SQLiteError {
        throw CommandError("cannot write the backup to \(target): \(error.message)", kind: Failure(error).kind)
    }
    let copy = try Database(path: target)
    try copy.run("INSERT INTO sync_state (key, value) VALUES ('restored_from', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 [.text(replica.id.description)])
    guard try copy.integrityCheck() == "ok" else {
        throw CommandError("the backup at \(target) failed its integrity check")
    }
}
