import Foundation
import Logging
import Retail
import SQLite
import SyncEngine

/// Opens an existing replica file; a missing file is a clear error, not a silently created replica.
func openReplica(_ path: String) throws -> Replica {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CommandError("no replica at \(path); create one with `storesync init`", kind: .notFound)
    }
    try checkAccess(path)
    if case .other(let reason) = try probeReplica(path) {
        throw CommandError("\(path) is not a StoreSync replica (\(reason)); create one with `storesync init`")
    }
    do {
        return try Replica(path: path, schema: RetailSchema.all)
    } catch {
        throw CommandError("cannot open \(path): \(error)", kind: Failure(error).kind)
    }
}

/// A replica is read and written (its `-wal` and `-shm` files are created beside it): a file or
/// directory this user may not use is reported as what it is, not as "not a replica".
func checkAccess(_ path: String) throws {
    func denied(_ what: String, _ code: Int32) -> CommandError {
        CommandError("permission denied: this user cannot \(what) (\(String(cString: strerror(code)))); "
                     + "run as the replica's owner or fix the permissions", kind: .permissionDenied)
    }
    if access(path, R_OK) != 0, errno == EACCES || errno == EPERM { throw denied("read \(path)", errno) }
    if access(path, W_OK) != 0, errno == EACCES || errno == EPERM || errno == EROFS { throw denied("write \(path)", errno) }
    let directory = (path as NSString).deletingLastPathComponent
    let folder = directory.isEmpty ? "." : directory
    if access(folder, W_OK | X_OK) != 0, errno == EACCES || errno == EPERM || errno == EROFS {
        throw denied("create files in \(folder) (SQLite keeps its -wal and -shm files beside the replica)", errno)
    }
}

func makeLogger(_ arguments: Arguments, label: String) throws -> Logger {
    let name = arguments.optional("log-level") ?? "info"
    guard let level = LogLevel(name: name) else {
        throw UsageError(message: "--log-level is one of \(LogLevel.allCases.map(\.description).joined(separator: ", "))")
    }
    return Logger(label: label, minimumLevel: level)
}

private func checkedIdentifier(_ value: String, option: String) throws -> String {
    let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    guard !value.isEmpty, value.count <= 64, value.unicodeScalars.allSatisfy(allowed.contains) else {
        throw UsageError(message: "--\(option) must be 1 to 64 letters, digits, '-', '_' or '.', got \(value)")
    }
    return value
}

/// `storesync init --db PATH (--terminal --store ID | --hub --region ID | --hq)`
func runInit(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "terminal", "store", "hub", "region", "hq"])
    let path = try arguments.required("db")
    let kinds = ["terminal", "hub", "hq"].filter { arguments.flag($0) }
    guard kinds.count == 1 else { throw UsageError(message: "give exactly one of --terminal, --hub, --hq") }
    let settings: NodeSettings
    switch kinds[0] {
    case "terminal":
        guard arguments.optional("region") == nil else { throw UsageError(message: "--region is for --hub") }
        settings = NodeSettings(kind: .terminal, scope: "store:" + (try checkedIdentifier(try arguments.required("store"), option: "store")))
    case "hub":
        guard arguments.optional("store") == nil else { throw UsageError(message: "--store is for --terminal") }
        settings = NodeSettings(kind: .hub, scope: "region:" + (try checkedIdentifier(try arguments.required("region"), option: "region")))
    default:
        guard arguments.optional("store") == nil, arguments.optional("region") == nil else {
            throw UsageError(message: "--hq sees every store and region; give neither --store nor --region")
        }
        settings = NodeSettings(kind: .hq, scope: "all")
    }
    let existed = FileManager.default.fileExists(atPath: path)
    if existed, case .other(let reason) = try probeReplica(path) {
        throw CommandError("\(path) exists and is not a StoreSync replica (\(reason)); init leaves it untouched, choose another path")
    }
    let replica: Replica
    do {
        replica = try Replica(path: path, schema: RetailSchema.all)
    } catch {
        throw CommandError("cannot create a replica at \(path): \(error)", kind: Failure(error).kind)
    }
    if existed, let current = try? NodeSettings.read(replica) {
        guard current.kind == settings.kind && current.scope == settings.scope else {
            throw CommandError("\(path) is already a \(current.kind.rawValue) replica for \(current.scope)")
        }
        print("\(path) is already a \(current.kind.rawValue) replica for \(current.scope) (replica \(replica.id))")
        return
    }
    try settings.write(replica)
    print("created \(settings.kind.rawValue) replica \(replica.id) for \(settings.scope) at \(path)")
}

/// What an existing file is, before `Replica.init` opens it: opening any SQLite database as a
/// replica would add the engine's and the retail tables to it, so a mistyped path could alter
/// someone's data.
private enum FileProbe {
    /// An empty file (a replica may be created in it) or a replica already (`sync_state` exists).
    case replicaOrEmpty
    /// Something else, and why: it must not become a replica.
    case other(String)
}

/// Looks at the file read-only. Only a file SQLite reads and finds to be another database, or
/// finds not to be a database at all, is "not a replica"; any other failure (no permission, a
/// busy or damaged disk) is reported as what the engine classifies it to be.
private func probeReplica(_ path: String) throws -> FileProbe {
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
    if size == 0 { return .replicaOrEmpty }
    var options = Database.Options()
    options.readOnly = true
    options.walMode = false
    do {
        let database = try Database(path: path, options: options)
        let tables = try database.fetchScalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'")
        return tables?.integerValue == 1 ? .replicaOrEmpty : .other("an SQLite database without StoreSync's tables")
    } catch {
        let category = SyncError.category(of: error) ?? .storage
        switch category {
        case .notAReplica:
            return .other("not an SQLite database")
        case .permissionDenied:
            throw CommandError("permission denied: this user cannot read \(path) (\(error)); "
                               + "run as the replica's owner or fix the permissions", kind: .permissionDenied)
        case .busy, .diskFull, .refused, .storage:
            throw CommandError("cannot read \(path): \(error)", kind: FailureKind(category))
        }
    }
}

/// `storesync status --db PATH [--format text|json]`
func runStatus(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "format"])
    let format = arguments.optional("format") ?? "text"
    guard format == "text" || format == "json" else { throw UsageError(message: "--format is text or json") }
    let replica = try openReplica(try arguments.required("db"))
    let settings = try NodeSettings.read(replica)
    let hub = try replica.setting("upstream_replica")?.blobValue.flatMap { try? ReplicaID(bytes: $0) }
    let acknowledged = try hub.map { try replica.cursor(for: $0).acknowledged } ?? 0
    let unsynced = try replica.changes(since: acknowledged, onlyLocalWrites: true).rowCount
    let lastSync = try replica.setting("last_sync_ms")?.integerValue
    let lastSyncText = lastSync.map { formatTime(milliseconds: $0) } ?? "never"
    if format == "json" {
        var fields = [
            "\"replica\":\"\(replica.id)\"", "\"role\":\"\(settings.kind.rawValue)\"", "\"scope\":\"\(settings.scope)\"",
            "\"latest_sequence\":\(replica.latestSequence)", "\"unsynced_local_changes\":\(unsynced)",
        ]
        fields.append("\"upstream\":" + (hub.map { "\"\($0)\"" } ?? "null"))
        fields.append("\"last_sync\":" + (lastSync.map { "\"\(formatTime(milliseconds: $0))\"" } ?? "null"))
        print("{" + fields.joined(separator: ",") + "}")
    } else {
        print("replica:                \(replica.id)")
        print("role:                   \(settings.kind.rawValue)")
        print("scope:                  \(settings.scope)")
        print("latest sequence:        \(replica.latestSequence)")
        print("unsynced local changes: \(unsynced)")
        print("upstream hub:           \(hub.map(\.description) ?? "none yet")")
        print("last successful sync:   \(lastSyncText)")
    }
}

func formatTime(milliseconds: Int64) -> String {
    let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
}

/// `storesync backup --db PATH --to NEW_PATH`: an online, consistent copy of a replica, safe
/// while `storesync hub` or `sync --live` runs on it (see `backUp`).
func runBackup(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "to", "format"])
    let format = try OutputFormat(arguments)
    let target = try arguments.required("to")
    let replica = try openReplica(try arguments.required("db"))
    _ = try NodeSettings.read(replica)
    try backUp(replica, to: target)
    if format == .json {
        try printJSON(["backup": target, "replica": replica.id.description])
    } else {
        print("backed up replica \(replica.id) to \(target)")
    }
}

/// `storesync reidentify --db PATH [--format text|json]`: gives a replica file a new replica id
/// (`Replica.reidentify(path:)`), what a hub's REPLICA_CONFLICT tells the operator of a clone or
/// a restored copy to run. Its rows stay and count as its own writes (pushed again under the new
/// id, idempotently). Takes the replica's lock: no `hub` or `sync --live` may run on the file.
func runReidentify(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "format"])
    let format = try OutputFormat(arguments)
    let path = try arguments.required("db")
    guard FileManager.default.fileExists(atPath: path) else {
        throw CommandError("no replica at \(path)", kind: .notFound)
    }
    try checkAccess(path)
    if case .other(let reason) = try probeReplica(path) {
        throw CommandError("\(path) is not a StoreSync replica (\(reason))")
    }
    let lock = try lockReplica(path)
    defer { withExtendedLifetime(lock) {} }
    let change: IdentityChange
    do {
        change = try Replica.reidentify(path: path)
    } catch {
        throw CommandError("cannot give \(path) a new replica id: \(error)", kind: Failure(error).kind)
    }
    if format == .json {
        try printJSON(["previous": change.previous.description, "replica": change.current.description])
    } else {
        print("replica \(change.previous) at \(path) is now replica \(change.current); sync it again")
    }
}
