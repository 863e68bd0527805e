import SQLite

/// One row of `changes(since:)` before it is grouped into a changeset.
struct SequencedRow {
    var sequence: UInt64
    var row: RowChange
}

/// Which writers' rows a batch of changes carries, by local site number. Rows go whole: a row
/// qualifies when its life version or any of its cells was written by an admitted site.
struct SiteFilter {
    /// Leave out what this site wrote: the peer the batch is for has it already.
    var excluded: UInt32?
    /// Keep only what these sites wrote (a leaf replica pushing to the hub that sent it everything
    /// else: its own identity and those it had before a restore). One or two entries.
    var only: [UInt32]?

    static let all = SiteFilter()

    @inline(__always)
    func admits(_ site: UInt32) -> Bool {
        if let excluded, site == excluded { return false }
        if let only, !only.contains(site) { return false }
        return true
    }
}

/// How far one table's change scan read: rows read (before filtering) and the last sequence read.
struct ChangeScan {
    var count = 0
    var lastSequence: UInt64?
}

/// What merging one remote row did to the user table.
public enum RowOutcome: Sendable, Hashable {
    /// Nothing changed: stale, duplicate or already known.
    case unchanged
    case inserted
    case updated(columns: [Int])
    case deleted
    /// A tombstone for a row this replica never had: no user-visible row changed.
    case tombstoned
}

/// The engine's side of one replicated table: its metadata table, statements and merge rule.
///
/// Each implementation owns the SQL of its user table and its `sync_` metadata table.
protocol ReplicatedTable: AnyObject {
    var schema: TableSchema { get }
    /// Kept apart from `schema` so hot paths read two words, not a copy of the schema.
    var name: TableName { get }
    var columnCount: Int { get }

    func createStorage() throws

    func insertLocal(primaryKey: String, values: [Value], in context: WriteContext) throws
    func updateLocal(primaryKey: String, columns: [Int], values: [Value], in context: WriteContext) throws
    func deleteLocal(primaryKey: String, in context: WriteContext) throws

    /// Merges one remote row. `columnMap[i]` is the local column of the changeset's column `i`.
    func merge(_ row: RowChange, columnMap: [Int], in context: WriteContext) throws -> RowOutcome

    /// Appends rows changed after `sequence` and at or before `through`, in sequence order,
    /// reading at most `limit` rows. Only rows whose writers `filter` admits are included.
    func changes(since sequence: UInt64, through: UInt64, limit: Int, filter: SiteFilter, sites: SiteTable,
                 into rows: inout [SequencedRow]) throws -> ChangeScan

    /// Appends the sequences of the first `limit` rows `changes` would read after `sequence`
    /// (from the sequence index alone, without reading the rows).
    func sequences(since sequence: UInt64, limit: Int, into sequences: inout [UInt64]) throws

    /// The table's `sync_` metadata table (unquoted), where its sequences live.
    var metadataTableName: String { get }

    /// Highest local sequence recorded in the table's metadata (from the sequence index).
    func sequenceHighWater() throws -> UInt64

    /// Highest HLC of any version the table holds: life versions and every cell's. A full scan,
    /// for migrations and clock rebases only; opens read the high-water the replica keeps.
    func clockHighWater() throws -> UInt64

    /// Calls `body` with the sequence and key of every metadata row (a migration's full scan).
    func forEachSequence(_ body: (UInt64, String) throws -> Void) throws

    /// Gives the metadata row of `primaryKey` at `sequence` the new sequence `newSequence`.
    func moveSequence(primaryKey: String, from sequence: UInt64, to newSequence: UInt64) throws

    /// Drops what an older format created and the current one replaces (run once, on migration).
    func dropLegacyIndexes() throws

    /// Rows changed after `sequence` (for status).
    func changedRowCount(since sequence: UInt64) throws -> Int

    /// Appends the canonical dump of the user table (and, if asked, of the versions).
    func dump(includeVersions: Bool, sites: SiteTable, into text: inout String) throws

    /// Gives local writes stamped after `ceiling` fresh versions; returns how many rows.
    func restamp(localSite: UInt32, above ceiling: UInt64, in context: WriteContext) throws -> Int

    /// The causal length and life version of a live row, or nil when it is missing or deleted.
    /// Insert-only tables keep no lives: they refuse (their rows cannot be updated anyway).
    func currentLife(primaryKey: String, sites: SiteTable) throws -> (causalLength: UInt64, version: Version)?

    /// The version of one cell of a live row (nil: no live row, or the cell was never written).
    func cellVersion(primaryKey: String, column: Int, sites: SiteTable) throws -> Version?

    /// Calls `body` with the key and version of every live row: the version that started the
    /// row's life (last-writer-wins) or the row's only version (insert-only). Unordered.
    func forEachRowVersion(sites: SiteTable, _ body: (String, Version) throws -> Void) throws
}

/// What a table needs from its replica while it writes: sequences, versions, sites.
final class WriteContext {
    let database: Database
    let sites: SiteTable
    let clock: HybridLogicalClock
    let localSite: UInt32
    private(set) var sequence: UInt64

    init(database: Database, sites: SiteTable, clock: HybridLogicalClock, localSite: UInt32, sequence: UInt64) {
        self.database = database
        self.sites = sites
        self.clock = clock
        self.localSite = localSite
        self.sequence = sequence
    }

    /// The next local sequence number: bumped on every row change, never reused.
    func nextSequence() -> UInt64 {
        sequence += 1
        return sequence
    }

    /// Restores the counter after a rolled-back transaction.
    func resetSequence(to value: UInt64) { sequence = value }

    /// Moves the counter up to what another connection committed (never down).
    func raiseSequence(to value: UInt64) { sequence = max(sequence, value) }

    /// A version for a local write that orders after `floor` (the versions it overwrites),
    /// so a replica's own write always beats what it replaces, even after the wall clock stepped back.
    func stamp(after floor: UInt64 = 0) -> UInt64 {
        if floor > 0 { clock.raise(to: HLCTimestamp(rawValue: floor)) }
        return clock.now().rawValue
    }
}

/// The engine's table object for a schema, bound to one connection.
func makeTable(_ schema: TableSchema, database: Database) throws -> any ReplicatedTable {
    switch schema.kind {
    case .lastWriterWins: return try LWWTable(schema: schema, database: database)
    case .insertOnly: return try InsertOnlyTable(schema: schema, database: database)
    }
}

/// Column list helpers shared by both table kinds.
extension TableSchema {
    var quotedName: String { quoted(name.rawValue) }
    var quotedKey: String { quoted(primaryKey.rawValue) }
    var quotedColumns: [String] { columns.map { quoted($0.name.rawValue) } }

    func placeholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

    /// The CREATE TABLE statement of the user table (public so tools can build an identical plain table).
    public var createTableSQL: String {
        let columnSQL = columns.map { "\(quoted($0.name.rawValue)) \($0.type.rawValue)" }
        return "CREATE TABLE IF NOT EXISTS \(quotedName) (\(quotedKey) TEXT PRIMARY KEY NOT NULL, \(columnSQL.joined(separator: ", ")))"
    }

    public var createIndexesSQL: [String] {
        indexes.map { index in
            let indexName = quoted("\(name.rawValue)_by_\(index.map(\.rawValue).joined(separator: "_"))")
            return "CREATE INDEX IF NOT EXISTS \(indexName) ON \(quotedName) (\(index.map { quoted($0.rawValue) }.joined(separator: ", ")))"
        }
    }

    /// `INSERT INTO t (key, c1, ...) VALUES (?, ...)` with an optional conflict clause.
    public func insertSQL(onConflict clause: String = "") -> String {
        let names = ([quotedKey] + quotedColumns).joined(separator: ", ")
        return "INSERT INTO \(quotedName) (\(names)) VALUES (\(placeholders(columns.count + 1)))" + clause
    }
}

/// Canonical text of a value for dumps: type-tagged, reals by bit pattern, text and blobs escaped as hex.
func canonicalText(_ value: Value) -> String {
    switch value {
    case .null: return "N"
    case .integer(let v): return "i\(v)"
    case .real(let v): return "r" + String(v.bitPattern, radix: 16)
    case .text(let v): return "t" + hexString(Array(v.utf8))
    case .blob(let v): return "b" + hexString(v)
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The highest change sequence stored in any of `tables`: where a replica's counter stands, at
/// open and after another connection committed. One index lookup per table.
func sequenceHighWater(of tables: [any ReplicatedTable]) throws -> UInt64 {
    var high: UInt64 = 0
    for table in tables {
        high = max(high, try table.sequenceHighWater())
    }
    return high
}

/// The highest HLC of any version stored in `tables` (a full scan of every table).
func clockHighWater(of tables: [any ReplicatedTable]) throws -> UInt64 {
    var high: UInt64 = 0
    for table in tables {
        high = max(high, try table.clockHighWater())
    }
    return high
}

/// Runs a table's prepared `SELECT seq … WHERE seq > ?1 ORDER BY seq LIMIT ?2` and appends the
/// sequences it finds.
func appendSequences(of statement: Statement, since sequence: UInt64, limit: Int, into sequences: inout [UInt64]) throws {
    try statement.bind(Int64(bitPattern: sequence), at: 1)
    try statement.bind(Int64(limit), at: 2)
    defer { statement.reset() }
    while try statement.step() { sequences.append(UInt64(bitPattern: statement.int64(at: 0))) }
}

