import SQLite

/// Maps replica ids to small local numbers, so per-column versions store 4 bytes, not 16.
///
/// Owns `sync_sites`. Number 0 is `ReplicaID.none` (a register never written). Numbers
/// are local to one replica file and never leave it; changesets carry full replica ids.
final class SiteTable {
    private let database: Database
    private var numbers: [ReplicaID: UInt32] = [.none: 0]
    private var ids: [UInt32: ReplicaID] = [0: .none]
    /// Sites added by the open transaction, forgotten again if it rolls back.
    private var addedInTransaction: [ReplicaID] = []

    static let schema = """
        CREATE TABLE IF NOT EXISTS sync_sites (
            site INTEGER PRIMARY KEY,
            replica BLOB NOT NULL UNIQUE
        );
        """

    init(database: Database) throws {
        self.database = database
        try reload()
    }

    /// Reads every site from disk (a reader catching up with sites the writer added).
    func reload() throws {
        try database.cachedStatement("SELECT site, replica FROM sync_sites WHERE site >= ?").forEachRow([.integer(Int64(ids.count))]) { row in
            let id = try ReplicaID(bytes: row.blob(1))
            let number = UInt32(truncatingIfNeeded: row.int64(0))
            numbers[id] = number
            ids[number] = id
        }
    }

    /// Most lookups in a batch ask for the same few replicas; remember the last answer.
    private var lastLookup: (id: ReplicaID, number: UInt32) = (.none, 0)

    func number(for id: ReplicaID) throws -> UInt32 {
        if id == lastLookup.id { return lastLookup.number }
        if let number = numbers[id] {
            lastLookup = (id, number)
            return number
        }
        // Another connection may have registered sites since we loaded ours (even this one):
        // the caller holds the write lock, so what we read now is what we insert after.
        try reload()
        if let number = numbers[id] {
            lastLookup = (id, number)
            return number
        }
        let number = UInt32(ids.count)
        try database.run("INSERT INTO sync_sites (site, replica) VALUES (?, ?)", [.integer(Int64(number)), .blob(id.bytes)])
        numbers[id] = number
        ids[number] = id
        addedInTransaction.append(id)
        return number
    }

    /// The number of a replica we already know, without registering it.
    func existingNumber(for id: ReplicaID) -> UInt32? { numbers[id] }

    /// Like `existingNumber`, reading sites added by another connection on a miss.
    func currentNumber(for id: ReplicaID) throws -> UInt32? {
        if let number = numbers[id] { return number }
        try reload()
        return numbers[id]
    }

    func id(for number: UInt32) throws(SyncError) -> ReplicaID {
        if let id = ids[number] { return id }
        // A reader meets sites the writer registered after the reader loaded its map: the row
        // and its site were committed together, so the same snapshot holds the site.
        try storage { try reload() }
        guard let id = ids[number] else {
            throw SyncError.schemaMismatch(table: "sync_sites", reason: "unknown site number \(number)")
        }
        return id
    }

    func version(hlc: UInt64, site: UInt32) throws(SyncError) -> Version {
        Version(hlc: HLCTimestamp(rawValue: hlc), origin: try id(for: site))
    }

    func transactionCommitted() { addedInTransaction.removeAll() }

    func transactionRolledBack() {
        lastLookup = (.none, 0)
        for id in addedInTransaction {
            if let number = numbers.removeValue(forKey: id) { ids.removeValue(forKey: number) }
        }
        addedInTransaction.removeAll()
    }
}
