import SQLite
import Synchronization
import SyncEngine
import Wire

/// Clone and restored-backup detection at the handshake (PROTOCOL.md §7.3, protocol version 2).
///
/// Per client replica id the hub keeps the lease it issued last (`current`) and, until the client
/// proves it stored that one, the lease the client presented to get it (`previous`; the client may
/// have crashed between HELLO_ACK and storing `current`). A HELLO is admitted when the hub holds
/// no lease for the id, or it presents `current`, or it presents `previous` while `current` is
/// unconfirmed; anything else means two databases answer to one replica id (a cloned disk, a
/// restored backup, an impostor) and is refused with REPLICA_CONFLICT. Once an id holds a lease,
/// a version 1 HELLO (which cannot present one) is refused too, so a clone cannot skip the check
/// by speaking the older version.
///
/// The handshake reads and updates the state in memory only (no database work on a connection's
/// queue); every change is persisted through the hub's writer (`MergeQueue.submitWrite`) in the
/// hub-owned table `sync_hub_leases`, and the session answers HELLO_ACK only once the new lease
/// is durable, so a hub crash never forgets a lease a client holds. Rows are keyed by this hub's
/// own replica id as well: a hub restored from a backup gets a new id, so the old rows (older
/// than what the clients hold) are ignored instead of refusing every client.
final class LeaseBook: Sendable {
    struct Record: Sendable, Equatable {
        var current: [UInt8]
        /// The lease presented to obtain `current` (empty: the client held none); nil once
        /// the client used `current` in the session (confirmed).
        var previous: [UInt8]?
    }

    enum Decision: Sendable, Equatable {
        /// Accepted; `issued` is the new lease for HELLO_ACK (nil for a version 1 session, which gets none).
        case accept(issued: Record?)
        case refuse(String)
    }

    static let schema = """
        CREATE TABLE IF NOT EXISTS sync_hub_leases (
            server BLOB NOT NULL,
            peer BLOB NOT NULL,
            current BLOB NOT NULL,
            previous BLOB,
            PRIMARY KEY (server, peer)
        ) WITHOUT ROWID
        """

    /// Replica ids this hub found held by two databases (a lease refused). Rows of such an id's
    /// origin may come from either database, so a pull by that id gets them too instead of
    /// skipping them as the puller's own: after the refused copy runs `reidentify`, it pushes
    /// the writes it made under the shared id, and the copy that kept the id must receive
    /// them (it never wrote them). Keyed by the client id alone, so the mark survives this
    /// hub's own identity changes.
    static let sharedSchema = """
        CREATE TABLE IF NOT EXISTS sync_hub_shared_ids (
            peer BLOB PRIMARY KEY NOT NULL
        ) WITHOUT ROWID
        """

    let server: ReplicaID
    private let records: Mutex<[ReplicaID: Record]>
    private let shared: Mutex<Set<ReplicaID>>

    /// Creates the table through the replica's write connection and loads this hub's leases.
    /// Called once, when the hub starts (not on any connection's queue).
    init(replica: Replica) throws {
        let server = replica.id
        let loaded = try replica.write { transaction -> (records: [ReplicaID: Record], shared: Set<ReplicaID>) in
            let database = transaction.database
            try database.execute(LeaseBook.schema)
            try database.execute(LeaseBook.sharedSchema)
            var shared: Set<ReplicaID> = []
            for row in try database.fetchAll("SELECT peer FROM sync_hub_shared_ids") {
                guard case .blob(let peer) = row[0], let id = try? ReplicaID(bytes: peer) else { continue }
                shared.insert(id)
            }
            var records: [ReplicaID: Record] = [:]
            for row in try database.fetchAll("SELECT peer, current, previous FROM sync_hub_leases WHERE server = ?", [.blob(server.bytes)]) {
                guard case .blob(let peer) = row[0], let id = try? ReplicaID(bytes: peer), case .blob(let current) = row[1],
                      current.count == Lease.byteCount else { continue }
                var previous: [UInt8]?
                switch row[2] {
                case .blob(let bytes): previous = bytes
                case .null: previous = nil
                default: previous = []  // an empty blob may read back as another type: treat as "held none"
                }
                records[id] = Record(current: current, previous: previous)
            }
            return (records, shared)
        }
        self.server = server
        self.records = Mutex(loaded.records)
        self.shared = Mutex(loaded.shared)
    }

    /// Whether `peer`'s id was found held by two databases (see `sharedSchema`).
    func isShared(_ peer: ReplicaID) -> Bool {
        shared.withLock { $0.contains(peer) }
    }

    /// Records that `peer`'s id is held by two databases: in memory now, in the file by the
    /// caller through the writer (`persistShared`).
    func markShared(_ peer: ReplicaID) {
        _ = shared.withLock { $0.insert(peer) }
    }

    func persistShared(_ peer: ReplicaID, in database: Database) throws {
        try database.run("INSERT INTO sync_hub_shared_ids (peer) VALUES (?) ON CONFLICT (peer) DO NOTHING", [.blob(peer.bytes)])
    }

    /// The handshake's decision for `peer` presenting `presented` (nil: a version 1 HELLO).
    /// On acceptance the new state is already in memory (so a racing HELLO of the same id sees
    /// it); the caller persists `issued` before answering.
    func admit(peer: ReplicaID, presented: [UInt8]?) -> Decision {
        records.withLock { records in
            let record = records[peer]
            guard let presented else {
                guard record == nil else {
                    return .refuse("replica \(peer) holds a lease from this hub, so it must connect with protocol version 2 and present it; "
                                   + "if this database is a copy of another (a cloned disk or a restored backup), run `storesync reidentify --db FILE` on it")
                }
                return .accept(issued: nil)
            }
            if let record {
                let matches = presented == record.current || (record.previous.map { $0 == presented } ?? false)
                guard matches else {
                    shared.withLock { _ = $0.insert(peer) }
                    return .refuse("replica \(peer) is held by another database: the lease presented is not the one this hub issued to it last. "
                                   + "This database is a clone or a restored backup of that replica: run `storesync reidentify --db FILE` on it "
                                   + "(it keeps its data and gets a new replica id), then sync again")
                }
            }
            let issued = Record(current: LeaseBook.randomLease(), previous: presented)
            records[peer] = issued
            return .accept(issued: issued)
        }
    }

    /// The client used `lease` in its session: it stored it. Returns the record to persist, or
    /// nil when nothing changed (already confirmed, or another session took over since).
    func confirm(peer: ReplicaID, lease: [UInt8]) -> Record? {
        records.withLock { records in
            guard var record = records[peer], record.current == lease, record.previous != nil else { return nil }
            record.previous = nil
            records[peer] = record
            return record
        }
    }

    /// The lease state of `peer` (tests, operators).
    func record(for peer: ReplicaID) -> Record? {
        records.withLock { $0[peer] }
    }

    /// Writes `record` for `peer`, inside the writer's transaction.
    func persist(_ record: Record, peer: ReplicaID, in database: Database) throws {
        try database.run(
            "INSERT INTO sync_hub_leases (server, peer, current, previous) VALUES (?, ?, ?, ?) "
                + "ON CONFLICT (server, peer) DO UPDATE SET current = excluded.current, previous = excluded.previous",
            [.blob(server.bytes), .blob(peer.bytes), .blob(record.current), record.previous.map { .blob($0) } ?? .null])
    }

    static func randomLease() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Lease.byteCount)
        for _ in 0..<(Lease.byteCount / 8) {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }
}

/// The push cursor of every client replica, cached for the handshake (HELLO_ACK's
/// `push_cursor`) so no connection queue reads the database: loaded when the hub starts, moved
/// forward by the writer after each commit that advanced one.
final class PushCursorCache: Sendable {
    private let cursors: Mutex<[ReplicaID: UInt64]>

    init(replica: Replica) throws {
        var loaded: [ReplicaID: UInt64] = [:]
        for cursor in try replica.cursors() { loaded[cursor.peer] = cursor.received }
        cursors = Mutex(loaded)
    }

    func cursor(for peer: ReplicaID) -> UInt64 {
        cursors.withLock { $0[peer] ?? 0 }
    }

    func advance(_ peer: ReplicaID, to sequence: UInt64) {
        cursors.withLock { $0[peer] = max($0[peer] ?? 0, sequence) }
    }
}
