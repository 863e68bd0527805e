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

    static func value(_ database: Database, key: String) throws -> Value? {
        try database.fetchScalar("SELECT value FROM sync_state WHERE key = ?", [.text(key)])
    }

    static func setValue(_ database: Database, key: String, _ value: Value) throws {
        try database.run(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [.text(key), value])
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
