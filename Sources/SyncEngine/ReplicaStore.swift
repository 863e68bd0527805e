import SQLite

/// The replica's own bookkeeping tables: identity and settings, peers' cursors, table registry.
enum ReplicaStore {
    static let schema = """
        CREATE TABLE IF NOT EXISTS sync_state (
            key TEXT PRIMARY KEY NOT NULL,
            value
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS sync_peers (
            peer BLOB PRIMARY KEY NOT NULL,
            received INTEGER NOT NULL DEFAULT 0,
            acknowledged INTEGER NOT NULL DEFAULT 0,
            last_sync_ms INTEGER
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS sync_tables (
            name TEXT PRIMARY KEY NOT NULL,
            signature TEXT NOT NULL
        ) WITHOUT ROWID;
        """

    /// Keys of `sync_state` the engine owns.
    enum Key {
        static let replicaID = "replica_id"
        /// Version of the file's layout; see `ReplicaMigration`.
        static let format = "format"
        /// Set in a backup copy only (hex id of the replica it was copied from): the first open
        /// of the copy gives it a new identity, so the copy and the original never share one.
        static let restoredFrom = "restored_from"
        /// Hex ids this replica had before (restores, reidentify), oldest first, comma-separated.
        static let previousIDs = "previous_ids"
        /// At or above the HLC of every version in the file: where the clock resumes.
        static let clockHighWater = "clock_high_water"
        static let clockOffset = "clock_offset_ms"
        /// Leases a server issued to this replica's identity (`lease:<server id hex>`).
        static let leasePrefix = "lease:"
    }

    static func value(_ database: Database, key: String) throws -> Value? {
        try database.fetchScalar("SELECT value FROM sync_state WHERE key = ?", [.text(key)])
    }

    static func setValue(_ database: Database, key: String, _ value: Value) throws {
        try database.run(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [.text(key), value])
    }

    static func removeValue(_ database: Database, key: String) throws {
        try database.run("DELETE FROM sync_state WHERE key = ?", [.text(key)])
    }

    // MARK: Identity

    /// The replica id the file holds, or nil when it holds none (not a replica, or not yet one).
    static func replicaID(_ database: Database) throws -> ReplicaID? {
        guard let stored = try value(database, key: Key.replicaID) else { return nil }
        guard case .blob(let bytes) = stored else { throw SyncError.invalidReplicaID(byteCount: 0) }
        return try ReplicaID(bytes: bytes)
    }

    static func previousIDs(_ database: Database) throws -> [ReplicaID] {
        guard let text = try value(database, key: Key.previousIDs)?.textValue, !text.isEmpty else { return [] }
        return try text.split(separator: ",").map { hex in
            guard let id = ReplicaID(hex: String(hex)) else {
                throw SyncError.schemaMismatch(table: "sync_state", reason: "previous_ids holds a malformed replica id")
            }
            return id
        }
    }

    /// Gives the replica a new random identity, inside the caller's write transaction: the old
    /// id joins `previous_ids` (rows it wrote stay this replica's own local writes, to be pushed
    /// again), the backup mark is cleared, leases issued to the old identity are forgotten and
    /// every peer's acknowledged cursor goes back to 0, because no peer holds anything of the
    /// new identity yet (pushing again is idempotent). Pull cursors are kept: what we received
    /// from a peer is still here.
    static func renewIdentity(_ database: Database) throws -> (old: ReplicaID, new: ReplicaID) {
        guard let old = try replicaID(database) else { throw SyncError.notAReplica(path: database.path) }
        var new = ReplicaID.random()
        let previous = try previousIDs(database)
        while new == old || previous.contains(new) || new == .none { new = ReplicaID.random() }
        try setValue(database, key: Key.replicaID, .blob(new.bytes))
        try setValue(database, key: Key.previousIDs, .text((previous + [old]).map(\.description).joined(separator: ",")))
        try removeValue(database, key: Key.restoredFrom)
        try database.run("DELETE FROM sync_state WHERE substr(key, 1, ?1) = ?2",
                         [.integer(Int64(Key.leasePrefix.utf8.count)), .text(Key.leasePrefix)])
        try database.run("UPDATE sync_peers SET acknowledged = 0")
        return (old, new)
    }

    static func cursor(_ database: Database, peer: ReplicaID) throws -> PeerCursor {
        guard let row = try database.fetchAll(
            "SELECT received, acknowledged, last_sync_ms FROM sync_peers WHERE peer = ?", [.blob(peer.bytes)]).first
        else { return PeerCursor(peer: peer, received: 0, acknowledged: 0, lastSyncMilliseconds: nil) }
        return PeerCursor(
            peer: peer,
            received: UInt64(bitPattern: row[0].integerValue ?? 0),
            acknowledged: UInt64(bitPattern: row[1].integerValue ?? 0),
            lastSyncMilliseconds: row[2].integerValue.map { UInt64(bitPattern: $0) })
    }

    static func allCursors(_ database: Database) throws -> [PeerCursor] {
        try database.fetchAll("SELECT peer, received, acknowledged, last_sync_ms FROM sync_peers ORDER BY peer").map { row in
            PeerCursor(
                peer: try ReplicaID(bytes: row[0].blobValue ?? []),
                received: UInt64(bitPattern: row[1].integerValue ?? 0),
                acknowledged: UInt64(bitPattern: row[2].integerValue ?? 0),
                lastSyncMilliseconds: row[3].integerValue.map { UInt64(bitPattern: $0) })
        }
    }

    /// Cursors only move forward; a stale acknowledgement never rewinds one.
    static func advanceReceived(_ database: Database, peer: ReplicaID, to sequence: UInt64, now: UInt64) throws {
        try database.run("""
            INSERT INTO sync_peers (peer, received, last_sync_ms) VALUES (?1, ?2, ?3)
            ON CONFLICT (peer) DO UPDATE SET received = max(received, excluded.received), last_sync_ms = excluded.last_sync_ms
            """, [.blob(peer.bytes), .integer(Int64(bitPattern: sequence)), .integer(Int64(bitPattern: now))])
    }

    static func advanceAcknowledged(_ database: Database, peer: ReplicaID, to sequence: UInt64, now: UInt64) throws {
        try database.run("""
            INSERT INTO sync_peers (peer, acknowledged, last_sync_ms) VALUES (?1, ?2, ?3)
            ON CONFLICT (peer) DO UPDATE SET acknowledged = max(acknowledged, excluded.acknowledged), last_sync_ms = excluded.last_sync_ms
            """, [.blob(peer.bytes), .integer(Int64(bitPattern: sequence)), .integer(Int64(bitPattern: now))])
    }

    /// Records the table's schema on first open and refuses a different one later.
    static func register(_ database: Database, schema: TableSchema) throws {
        let stored = try database.fetchScalar("SELECT signature FROM sync_tables WHERE name = ?", [.text(schema.name.rawValue)])
        if let stored {
            guard stored.textValue == schema.signature else {
                throw SyncError.schemaMismatch(table: schema.name.rawValue, reason: "stored as \(stored.textValue ?? "?"), opened as \(schema.signature)")
            }
            return
        }
        try database.run("INSERT INTO sync_tables (name, signature) VALUES (?, ?)", [.text(schema.name.rawValue), .text(schema.signature)])
    }
}

/// How far this replica and one peer have exchanged changes.
public struct PeerCursor: Sendable, Hashable {
    public var peer: ReplicaID
    /// The peer's local sequence up to which we have applied its changes: ask for changes after it.
    public var received: UInt64
    /// Our local sequence up to which the peer confirmed it holds our changes: send changes after it.
    public var acknowledged: UInt64
    public var lastSyncMilliseconds: UInt64?
}
