import SQLite

/// A table of immutable rows (visits, stock signals, sales): merging is set union by key.
///
/// Owns `sync_log_<table>`: one row per user row, keyed by the local sequence in which the
/// row arrived, with the version it was written with. The sequence is an integer primary
/// key, so logging a row is an append and `changes(since:)` a range scan. A row that arrives
/// again under a key we hold is a re-delivery and is ignored: keys are 128-bit and unique.
final class InsertOnlyTable: ReplicatedTable {
    let schema: TableSchema
    let name: TableName
    let columnCount: Int
    private let database: Database
    private let logName: String

    private let insertRowSQL: String
    private let mergeRowSQL: String
    private let logSQL: String
    private let changesSQL: String
    private let sequencesSQL: String
    private let dumpSQL: String
    private var insertRowStatement: Statement?
    private var mergeRowStatement: Statement?
    private var logStatement: Statement?
    private var changesStatement: Statement?
    private var sequencesStatement: Statement?

    init(schema: TableSchema, database: Database) throws {
        self.schema = schema
        self.name = schema.name
        self.columnCount = schema.columns.count
        self.database = database
        let log = quoted("sync_log_\(schema.name.rawValue)")
        self.logName = log
        insertRowSQL = schema.insertSQL()
        mergeRowSQL = schema.insertSQL(onConflict: " ON CONFLICT (\(schema.quotedKey)) DO NOTHING")
        logSQL = "INSERT INTO \(log) (seq, pk, hlc, site) VALUES (?, ?, ?, ?)"
        let userColumns = schema.quotedColumns.map { "t.\($0)" }.joined(separator: ", ")
        changesSQL = """
            SELECT l.seq, l.pk, l.hlc, l.site, \(userColumns)
            FROM \(log) AS l JOIN \(schema.quotedName) AS t ON t.\(schema.quotedKey) = l.pk
            WHERE l.seq > ?1 AND l.seq <= ?3 ORDER BY l.seq LIMIT ?2
            """
        sequencesSQL = """
            SELECT l.seq FROM \(log) AS l JOIN \(schema.quotedName) AS t ON t.\(schema.quotedKey) = l.pk
            WHERE l.seq > ? ORDER BY l.seq LIMIT ?
            """
        dumpSQL = """
            SELECT \(([schema.quotedKey] + schema.quotedColumns).map { "t.\($0)" }.joined(separator: ", ")), l.hlc, l.site
            FROM \(schema.quotedName) AS t LEFT JOIN \(log) AS l ON l.pk = t.\(schema.quotedKey)
            ORDER BY t.\(schema.quotedKey)
            """
    }

    /// Creates the user table, its indexes and its metadata table if missing (writer only).
    func createStorage() throws {
        try database.execute(schema.createTableSQL)
        for sql in schema.createIndexesSQL { try database.execute(sql) }
        try database.execute("""
            CREATE TABLE IF NOT EXISTS \(logName) (
                seq INTEGER PRIMARY KEY,
                pk TEXT NOT NULL,
                hlc INTEGER NOT NULL,
                site INTEGER NOT NULL
            );
            """)
    }

    private var tableName: String { name.rawValue }

    /// The table's statements are prepared once and kept, so the hot path never re-parses or hashes SQL.
    private func statement(_ slot: inout Statement?, _ sql: String) throws -> Statement {
        if let prepared = slot { return prepared }
        let prepared = try database.prepare(sql)
        slot = prepared
        return prepared
    }

    private func log(_ primaryKey: String, sequence: UInt64, hlc: UInt64, site: UInt32) throws {
        let statement = try statement(&logStatement, logSQL)
        try statement.bind(Int64(bitPattern: sequence), at: 1)
        try statement.bind(primaryKey, at: 2)
        try statement.bind(Int64(bitPattern: hlc), at: 3)
        try statement.bind(Int64(site), at: 4)
        try statement.step()
        statement.reset()
    }

    private func writeRow(_ statement: Statement, primaryKey: String, values: [Value]) throws -> Bool {
        try statement.bind(primaryKey, at: 1)
        for (index, value) in values.enumerated() {
            try statement.bind(value, at: Int32(index + 2))
        }
        try statement.step()
        statement.reset()
        return database.changes > 0
    }

    func insertLocal(primaryKey: String, values: [Value], in context: WriteContext) throws {
        do {
            _ = try writeRow(try statement(&insertRowStatement, insertRowSQL), primaryKey: primaryKey, values: values)
        } catch let error as SQLiteError where error.isConstraintViolation {
            throw SyncError.rowExists(table: tableName, primaryKey: primaryKey)
        }
        try log(primaryKey, sequence: context.nextSequence(), hlc: context.stamp(), site: context.localSite)
    }

    func updateLocal(primaryKey: String, columns: [Int], values: [Value], in context: WriteContext) throws {
        throw SyncError.immutableTable(tableName)
    }

    func deleteLocal(primaryKey: String, in context: WriteContext) throws {
        throw SyncError.immutableTable(tableName)
    }

    func merge(_ row: RowChange, columnMap: [Int], in context: WriteContext) throws -> RowOutcome {
        guard row.causalLength == 1 else {
            throw SyncError.invalidChangeset("row of insert-only table \(tableName) with causal length \(row.causalLength)")
        }
        var values = [Value](repeating: .null, count: columnCount)
        for cell in row.cells {
            values[columnMap[cell.column]] = cell.value
        }
        guard try writeRow(try statement(&mergeRowStatement, mergeRowSQL), primaryKey: row.primaryKey, values: values) else {
            return .unchanged
        }
        try log(row.primaryKey, sequence: context.nextSequence(), hlc: row.lifeVersion.hlc.rawValue,
                site: try context.sites.number(for: row.lifeVersion.origin))
        return .inserted
    }

    func changes(since sequence: UInt64, through: UInt64, limit: Int, filter: SiteFilter, sites: SiteTable,
                 into rows: inout [SequencedRow]) throws -> ChangeScan {
        var scan = ChangeScan()
        let statement = try statement(&changesStatement, changesSQL)
        try statement.bind(Int64(bitPattern: sequence), at: 1)
        try statement.bind(Int64(limit), at: 2)
        try statement.bind(Int64(bitPattern: min(through, UInt64(Int64.max))), at: 3)
        defer { statement.reset() }
        while try statement.step() {
            let rowSequence = UInt64(bitPattern: statement.int64(at: 0))
            scan.count += 1
            scan.lastSequence = rowSequence
            let site = UInt32(truncatingIfNeeded: statement.int64(at: 3))
            if !filter.admits(site) { continue }
            let version = try sites.version(hlc: UInt64(bitPattern: statement.int64(at: 2)), site: site)
            var cells: [Cell] = []
            cells.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                cells.append(Cell(column: column, value: statement.value(at: Int32(4 + column)), version: version))
            }
            rows.append(SequencedRow(
                sequence: rowSequence,
                row: RowChange(primaryKey: statement.text(at: 1) ?? "", causalLength: 1, lifeVersion: version, cells: cells)))
        }
        return scan
    }

    func sequences(since sequence: UInt64, limit: Int, into sequences: inout [UInt64]) throws {
        try appendSequences(of: try statement(&sequencesStatement, sequencesSQL), since: sequence, limit: limit, into: &sequences)
    }

    func sequenceHighWater() throws -> UInt64 {
        UInt64(bitPattern: try database.cachedStatement("SELECT max(seq) FROM \(logName)").fetchOne()?.first?.integerValue ?? 0)
    }

    func clockHighWater() throws -> UInt64 {
        UInt64(bitPattern: try database.prepare("SELECT max(hlc) FROM \(logName)").fetchOne()?.first?.integerValue ?? 0)
    }

    var metadataTableName: String { "sync_log_\(schema.name.rawValue)" }

    /// The log's sequence is its integer primary key: unique within the table from the start.
    func dropLegacyIndexes() throws {}

    func forEachSequence(_ body: (UInt64, String) throws -> Void) throws {
        try database.prepare("SELECT seq, pk FROM \(logName)").forEachRow { row in
            try body(UInt64(bitPattern: row.int64(0)), row.text(1) ?? "")
        }
    }

    func moveSequence(primaryKey: String, from sequence: UInt64, to newSequence: UInt64) throws {
        try database.prepare("UPDATE \(logName) SET seq = ?1 WHERE seq = ?2 AND pk = ?3")
            .execute([.integer(Int64(bitPattern: newSequence)), .integer(Int64(bitPattern: sequence)), .text(primaryKey)])
    }

    func changedRowCount(since sequence: UInt64) throws -> Int {
        Int(try database.fetchScalar("SELECT count(*) FROM \(logName) WHERE seq > ?", [.integer(Int64(bitPattern: sequence))])?.integerValue ?? 0)
    }

    func dump(includeVersions: Bool, sites: SiteTable, into text: inout String) throws {
        let columnCount = schema.columns.count + 1
        try database.cachedStatement(dumpSQL).forEachRow { row in
            text += tableName
            for index in 0..<columnCount {
                text += "|" + canonicalText(row[index])
            }
            if includeVersions {
                text += "|" + (try sites.version(hlc: UInt64(bitPattern: row.int64(columnCount)),
                                                 site: UInt32(truncatingIfNeeded: row.int64(columnCount + 1)))).description
            }
            text += "\n"
        }
    }

    func currentLife(primaryKey: String, sites: SiteTable) throws -> (causalLength: UInt64, version: Version)? {
        throw SyncError.immutableTable(tableName)
    }

    func cellVersion(primaryKey: String, column: Int, sites: SiteTable) throws -> Version? {
        throw SyncError.schemaMismatch(
            table: tableName, reason: "cell versions are kept for last-writer-wins tables; list an insert-only table's with forEachRowVersion")
    }

    func forEachRowVersion(sites: SiteTable, _ body: (String, Version) throws -> Void) throws {
        try database.cachedStatement("SELECT pk, hlc, site FROM \(logName)").forEachRow { row in
            try body(row.text(0) ?? "", try sites.version(hlc: UInt64(bitPattern: row.int64(1)), site: UInt32(truncatingIfNeeded: row.int64(2))))
        }
    }

    func restamp(localSite: UInt32, above ceiling: UInt64, in context: WriteContext) throws -> Int {
        var stale: [(sequence: Int64, key: String)] = []
        try database.prepare("SELECT seq, pk FROM \(logName) WHERE site = ? AND hlc > ?")
            .forEachRow([.integer(Int64(localSite)), .integer(Int64(bitPattern: ceiling))]) { row in
                stale.append((row.int64(0), row.text(1) ?? ""))
            }
        for entry in stale {
            // A new sequence too, so the row is offered to peers again with its new version.
            try database.run("DELETE FROM \(logName) WHERE seq = ?", [.integer(entry.sequence)])
            try log(entry.key, sequence: context.nextSequence(), hlc: context.stamp(), site: localSite)
        }
        return stale.count
    }
}
