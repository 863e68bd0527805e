import Foundation
import Glibc
import SQLite

/// What `Replica.reidentify(path:)` did.
public struct IdentityChange: Sendable, Hashable {
    public var previous: ReplicaID
    public var current: ReplicaID
}

extension Replica {
    /// Writes an online, consistent copy of the replica to `destination`, the documented way to
    /// back one up (a copy of the file while a process writes it may be torn; a copy without
    /// its `-wal` misses commits).
    ///
    /// - Online: the copy is one read snapshot (`VACUUM INTO` on a read-only connection of its
    ///   own), so this replica and other processes keep writing meanwhile; free pages, which may
    ///   hold erased personal data, are not copied.
    /// - Marked: the copy's `sync_state` gets `restored_from = <this replica's id>`; the first
    ///   open of the copy as a replica gives it a new identity (`previousIDs` keeps the old one),
    ///   so a restored copy never speaks as the original it was copied from. This file is not
    ///   changed.
    /// - Durable and never half there: written under a temporary name in the destination's
    ///   directory, synced, then linked to `destination` (which must not exist: never
    ///   overwritten) and the directory synced.
    public func backup(to destination: String) throws {
        guard isFileBacked else {
            throw SyncError.notAReplica(path: "\(path) (an in-memory replica has no file to back up)")
        }
        if FileManager.default.fileExists(atPath: destination) {
            throw ReplicaFileError.destinationExists(path: destination)
        }
        let partial = destination + ".partial-\(ReplicaID.random().description.prefix(12))"
        defer {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(partial + suffix) }
        }
        try storage {
            var options = Database.Options()
            options.readOnly = true
            try Database(path: path, options: options).vacuum(into: partial)
        }
        try storage {
            // The copy is marked before it has its final name: no unmarked copy ever exists there.
            let copy = try Database(path: partial)
            try copy.transaction {
                try ReplicaStore.setValue(copy, key: ReplicaStore.Key.restoredFrom, .text(id.description))
            }
            try copy.checkpoint(.truncate)
        }
        try syncFile(partial)
        // link, not rename: it fails instead of replacing a file that appeared meanwhile.
        var linked = link(partial, destination)
        while linked != 0 && errno == EINTR { linked = link(partial, destination) }
        if linked != 0 {
            let code = errno
            throw code == EEXIST ? ReplicaFileError.destinationExists(path: destination)
                : ReplicaFileError.system(operation: "link", path: destination, errno: code)
        }
        try syncDirectory(of: destination)
    }

    /// Gives the replica at `path` a new random identity, as opening a restored backup does:
    /// what an operator runs on a clone or a restored copy that a hub refused with
    /// REPLICA_CONFLICT. The old id joins `previous_ids` (its rows are still this replica's own
    /// local writes, pushed again under the new id, idempotently), leases issued to the old id
    /// are forgotten and every peer's acknowledged cursor restarts at 0.
    ///
    /// No process may have the file open as a replica meanwhile (it would keep writing under
    /// the old id): callers take `ReplicaLock` first. Throws `SyncError.notAReplica` for a
    /// file that is not a replica (nothing is created).
    @discardableResult
    public static func reidentify(path: String) throws -> IdentityChange {
        guard FileManager.default.fileExists(atPath: path) else { throw SyncError.notAReplica(path: path) }
        let database = try storage { try Database(path: path) }
        if database.isReadOnly {
            throw SyncError.storage(SQLiteError(code: 8 /* SQLITE_READONLY */, message: "\(path) may not be written by this user (file permissions or a read-only file system)"))
        }
        let change = try storage {
            try database.transaction { () throws -> IdentityChange in
                let hasState = try database.fetchScalar(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'")?.integerValue == 1
                guard hasState, try ReplicaStore.replicaID(database) != nil else { throw SyncError.notAReplica(path: path) }
                let ids = try ReplicaStore.renewIdentity(database)
                return IdentityChange(previous: ids.old, current: ids.new)
            }
        }
        _ = try storage { try database.checkpoint(.passive) }
        return change
    }
}

private func syncFile(_ path: String) throws {
    let descriptor = try systemCall("open", path: path) { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(descriptor) }
    try systemCall("fsync", path: path) { fsync(descriptor) }
}

/// Makes a new directory entry durable.
private func syncDirectory(of path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try syncFile(directory.isEmpty ? "." : directory)
}
