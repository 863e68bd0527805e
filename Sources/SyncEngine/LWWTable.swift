import SQLite

/// A table whose columns are last-writer-wins registers, with causal-length deletes.
///
/// Owns `sync_lww_<table>`: one metadata row per user row (never one per column), keyed by
/// the row's primary key, holding the row's last change sequence, its causal length and the
/// version of the write that started the current life, and the packed per-column clock.
/// A deleted row keeps its metadata row as a tombstone with an even causal length.
final class LWWTable: ReplicatedTable {
    let schema: TableSchema
    let name: TableName
    let columnCount: Int
    private let database: Database
    private let metaName: String
    private var updateStatements: [[Int]: Statement] = [:]

    private let insertRowSQL: String
    private let upsertRowSQL: String
    private let deleteRowSQL: String
    private let readMetaSQL: String
    private let writeMetaSQL: String
    private let insertMetaLocalSQL: String
    private let changesSQL: String
    private let sequencesSQL: String
    private let claimMetaSQL: String
    private let dumpSQL: String
    private var insertRowStatement: Statement?
    private var upsertRowStatement: Statement?
    private var deleteRowStatement: Statement?
    private var readMetaStatement: Statement?
    private var writeMetaStatement: Statement?
    private var insertMetaLocalStatement: Statement?
    private var changesStatement: Statement?
    private var sequencesStatement: Statement?
    private var claimMetaStatement: Statement?
    private let dumpMetaSQL: String

    init(schema: TableSchema, database: Database) throws {
        self.schema = schema
        self.name = schema.name
        self.columnCount = schema.columns.count
        self.database = database
        let meta = quoted("sync_lww_\(schema.name.rawValue)")
        self.metaName = meta
        insertRowSQL = schema.insertSQL()
        let assignments = schema.quotedColumns.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        upsertRowSQL = schema.insertSQL(onConflict: " ON CONFLICT (\(schema.quotedKey)) DO UPDATE SET \(assignments)")
        deleteRowSQL = "DELETE FROM \(schema.quotedName) WHERE \(schema.quotedKey) = ?"
        readMetaSQL = "SELECT seq, cl, cl_hlc, cl_site, clock FROM \(meta) WHERE pk = ?"
        writeMetaSQL = """
            INSERT INTO \(meta) (pk, seq, cl, cl_hlc, cl_site, clock) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (pk) DO UPDATE SET seq = excluded.seq, cl = excluded.cl,
                cl_hlc = excluded.cl_hlc, cl_site = excluded.cl_site, clock = excluded.clock
            """
        // A local insert either creates the first life or re-inserts over a tombstone (even length).
        insertMetaLocalSQL = """
            INSERT INTO \(meta) (pk, seq, cl, cl_hlc, cl_site, clock) VALUES (?, ?, 1, ?, ?, ?)
            ON CONFLICT (pk) DO UPDATE SET seq = excluded.seq, cl = cl + 1,
                cl_hlc = excluded.cl_hlc, cl_site = excluded.cl_site, clock = excluded.clock
            WHERE cl % 2 = 0
            """
        claimMetaSQL = "INSERT INTO \(meta) (pk, seq, cl, cl_hlc, cl_site, clock) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pk) DO NOTHING"
        let userColumns = schema.quotedColumns.map { "t.\($0)" }.joined(separator: ", ")
        changesSQL = """
            SELECT m.pk, m.seq, m.cl, m.cl_hlc, m.cl_site, m.clock, \(userColumns)
            FROM \(meta) AS m LEFT JOIN \(schema.quotedName) AS t ON t.\(schema.quotedKey) = m.pk
            WHERE m.seq > ?1 AND m.seq <= ?3 ORDER BY m.seq LIMIT ?2
            """
        sequencesSQL = "SELECT seq FROM \(meta) WHERE seq > ? ORDER BY seq LIMIT ?"
        dumpSQL = "SELECT \(([schema.quotedKey] + schema.quotedColumns).joined(separator: ", ")) FROM \(schema.quotedName) ORDER BY \(schema.quotedKey)"
        dumpMetaSQL = "SELECT pk, cl, cl_hlc, cl_site, clock FROM \(meta) ORDER BY pk"

    }

    /// Creates the user table, its indexes and its metadata table if missing (writer only).
    func createStorage() throws {
        try database.execute(schema.createTableSQL)
        for sql in schema.createIndexesSQL { try database.execute(sql) }
        try database.execute("""
            CREATE TABLE IF NOT EXISTS \(metaName) (
                pk TEXT PRIMARY KEY NOT NULL,
                seq INTEGER NOT NULL,
                cl INTEGER NOT NULL,
                cl_hlc INTEGER NOT NULL,
                cl_site INTEGER NOT NULL,
                clock BLOB NOT NULL
            ) WITHOUT ROWID;
            CREATE UNIQUE INDEX IF NOT EXISTS \(quoted("sync_lww_\(schema.name.rawValue)_seq")) ON \(metaName) (seq);
            """)
    }

    /// Format 1 indexed `seq` without a unique constraint, so a reused sequence went unnoticed
    /// (and a pull cursor could skip a row); `createStorage` now makes a unique index instead.
    func dropLegacyIndexes() throws {
        try database.execute("DROP INDEX IF EXISTS \(quoted("sync_lww_\(schema.name.rawValue)_by_seq"))")
    }

    var metadataTableName: String { "sync_lww_\(schema.name.rawValue)" }

    func forEachSequence(_ body: (UInt64, String) throws -> Void) throws {
        try database.prepare("SELECT seq, pk FROM \(metaName)").forEachRow { row in
            try body(UInt64(bitPattern: row.int64(0)), row.text(1) ?? "")
        }
    }

    func moveSequence(primaryKey: String, from sequence: UInt64, to newSequence: UInt64) throws {
        try database.prepare("UPDATE \(metaName) SET seq = ?1 WHERE pk = ?2 AND seq = ?3")
            .execute([.integer(Int64(bitPattern: newSequence)), .text(primaryKey), .integer(Int64(bitPattern: sequence))])
    }

    private var tableName: String { name.rawValue }

    /// The table's statements are prepared once and kept, so the hot path never re-parses or hashes SQL.
    private func statement(_ slot: inout Statement?, _ sql: String) throws -> Statement {
        if let prepared = slot { return prepared }
        let prepared = try database.prepare(sql)
        slot = prepared
        return prepared
    }

    // MARK: Metadata

    private struct Meta {
        var causalLength: UInt64
        var lifeHLC: UInt64
        var lifeSite: UInt32
        var clock: CellClock
        var isAlive: Bool { causalLength % 2 == 1 }
    }

    private func readMeta(_ primaryKey: String) throws -> Meta? {
        let statement = try statement(&readMetaStatement, readMetaSQL)
        try statement.bind(primaryKey, at: 1)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        let clock = try statement.withBlob(at: 4) { bytes throws(SyncError) in
            try CellClock(bytes: bytes, columnCount: columnCount, table: tableName)
        }
        return Meta(
            causalLength: UInt64(bitPattern: statement.int64(at: 1)),
            lifeHLC: UInt64(bitPattern: statement.int64(at: 2)),
            lifeSite: UInt32(truncatingIfNeeded: statement.int64(at: 3)),
            clock: clock)
    }

    private func writeMeta(_ primaryKey: String, sequence: UInt64, _ meta: Meta) throws {
        let statement = try statement(&writeMetaStatement, writeMetaSQL)
        try statement.bind(primaryKey, at: 1)
        try statement.bind(Int64(bitPattern: sequence), at: 2)
        try statement.bind(Int64(bitPattern: meta.causalLength), at: 3)
        try statement.bind(Int64(bitPattern: meta.lifeHLC), at: 4)
        try statement.bind(Int64(meta.lifeSite), at: 5)
        // A tombstone keeps no registers: the next life starts from empty ones.
        try statement.bind(meta.isAlive ? meta.clock.bytes : [], at: 6)
        try statement.step()
        statement.reset()
    }

    // MARK: User rows

    private func writeFullRow(_ statement: Statement, primaryKey: String, values: [Value]) throws {
        try statement.bind(primaryKey, at: 1)
        for (index, value) in values.enumerated() {
            try statement.bind(value, at: Int32(index + 2))
        }
        try statement.step()
        statement.reset()
    }

    private func updateColumns(primaryKey: String, columns: [Int], values: [Value]) throws {
        let statement: Statement
        if let cached = updateStatements[columns] {
            statement = cached
        } else {
            let assignments = columns.map { "\(schema.quotedColumns[$0]) = ?" }.joined(separator: ", ")
            statement = try database.prepare("UPDATE \(schema.quotedName) SET \(assignments) WHERE \(schema.quotedKey) = ?")
            updateStatements[columns] = statement
        }
        statement.reset()
        for (index, value) in values.enumerated() {
            try statement.bind(value, at: Int32(index + 1))
        }
        try statement.bind(primaryKey, at: Int32(values.count + 1))
        try statement.step()
        statement.reset()
    }

    private func deleteRow(_ primaryKey: String) throws {
        let statement = try statement(&deleteRowStatement, deleteRowSQL)
        try statement.bind(primaryKey, at: 1)
        try statement.step()
        statement.reset()
    }

    // MARK: Local writes

    func insertLocal(primaryKey: String, values: [Value], in context: WriteContext) throws {
        do {
            try writeFullRow(try statement(&insertRowStatement, insertRowSQL), primaryKey: primaryKey, values: values)
        } catch let error as SQLiteError where error.isConstraintViolation {
            throw SyncError.rowExists(table: tableName, primaryKey: primaryKey)
        }
        let hlc = context.stamp()
        let sequence = context.nextSequence()
        let clock = CellClock(count: columnCount, hlc: hlc, site: context.localSite)
        let statement = try statement(&insertMetaLocalStatement, insertMetaLocalSQL)
        try statement.bind(primaryKey, at: 1)
        try statement.bind(Int64(bitPattern: sequence), at: 2)
        try statement.bind(Int64(bitPattern: hlc), at: 3)
        try statement.bind(Int64(context.localSite), at: 4)
        try statement.bind(clock.bytes, at: 5)
        try statement.step()
        statement.reset()
        if database.changes == 0 {
            // Metadata says the row is alive, yet it was missing from the user table:
            // somebody deleted it behind the engine's back. Refuse rather than guess.
            throw SyncError.schemaMismatch(table: tableName, reason: "row metadata is alive but the row is missing")
        }
    }

    func updateLocal(primaryKey: String, columns: [Int], values: [Value], in context: WriteContext) throws {
        guard var meta = try readMeta(primaryKey), meta.isAlive else {
            throw SyncError.rowNotFound(table: tableName, primaryKey: primaryKey)
        }
        let floor = columns.map { meta.clock.hlc($0) }.max() ?? 0
        let hlc = context.stamp(after: max(floor, meta.lifeHLC))
        let sequence = context.nextSequence()
        for column in columns {
            meta.clock.set(column, hlc: hlc, site: context.localSite)
        }
        try updateColumns(primaryKey: primaryKey, columns: columns, values: values)
        try writeMeta(primaryKey, sequence: sequence, meta)
    }

    func deleteLocal(primaryKey: String, in context: WriteContext) throws {
        guard var meta = try readMeta(primaryKey), meta.isAlive else {
            throw SyncError.rowNotFound(table: tableName, primaryKey: primaryKey)
        }
        let hlc = context.stamp(after: max(meta.clock.highestHLC, meta.lifeHLC))
        meta.causalLength += 1
        meta.lifeHLC = hlc
        meta.lifeSite = context.localSite
        try deleteRow(primaryKey)
        try writeMeta(primaryKey, sequence: context.nextSequence(), meta)
    }

    // MARK: Merge

    /// True when `version` beats the register (hlc, site); ties on HLC go to the higher replica id.
    private func wins(_ version: Version, over hlc: UInt64, site: UInt32, sites: SiteTable) throws -> Bool {
        let remote = version.hlc.rawValue
        if remote != hlc { return remote > hlc }
        return version.origin > (try sites.id(for: site))
    }

    /// Registers and values of a life built from the row's cells alone.
    private func freshLife(_ row: RowChange, columnMap: [Int], sites: SiteTable) throws -> (values: [Value], clock: CellClock) {
        var values = [Value](repeating: .null, count: columnCount)
        var hlcs = [UInt64](repeating: 0, count: columnCount)
        var siteNumbers = [UInt32](repeating: 0, count: columnCount)
        for cell in row.cells {
            let column = columnMap[cell.column]
            if try wins(cell.version, over: hlcs[column], site: siteNumbers[column], sites: sites) {
                values[column] = cell.value
                hlcs[column] = cell.version.hlc.rawValue
                siteNumbers[column] = try sites.number(for: cell.version.origin)
            }
        }
        return (values, CellClock(hlcs: hlcs, sites: siteNumbers))
    }

    func merge(_ row: RowChange, columnMap: [Int], in context: WriteContext) throws -> RowOutcome {
        let primaryKey = row.primaryKey
        let remoteLength = row.causalLength
        let lifeSite = try context.sites.number(for: row.lifeVersion.origin)

        if remoteLength % 2 == 1 {
            // Most merged rows are new here: claim the metadata row first, and only read it
            // when it already exists. Saves a lookup per new row.
            let sequence = context.sequence + 1
            let life = try freshLife(row, columnMap: columnMap, sites: context.sites)
            let claim = try statement(&claimMetaStatement, claimMetaSQL)
            try claim.bind(primaryKey, at: 1)
            try claim.bind(Int64(bitPattern: sequence), at: 2)
            try claim.bind(Int64(bitPattern: remoteLength), at: 3)
            try claim.bind(Int64(bitPattern: row.lifeVersion.hlc.rawValue), at: 4)
            try claim.bind(Int64(lifeSite), at: 5)
            try claim.bind(life.clock.bytes, at: 6)
            try claim.step()
            claim.reset()
            if database.changes > 0 {
                _ = context.nextSequence()
                try writeFullRow(try statement(&upsertRowStatement, upsertRowSQL), primaryKey: primaryKey, values: life.values)
                return .inserted
            }
        }

        let existing = try readMeta(primaryKey)
        if let existing, remoteLength < existing.causalLength {
            return .unchanged
        }

        if existing.map({ remoteLength > $0.causalLength }) ?? true {
            // A life we have not seen: it replaces whatever older life we hold.
            var meta = Meta(causalLength: remoteLength, lifeHLC: row.lifeVersion.hlc.rawValue,
                            lifeSite: lifeSite, clock: CellClock(empty: columnCount))
            let sequence = context.nextSequence()
            guard meta.isAlive else {
                if let existing, existing.isAlive {
                    try deleteRow(primaryKey)
                    try writeMeta(primaryKey, sequence: sequence, meta)
                    return .deleted
                }
                try writeMeta(primaryKey, sequence: sequence, meta)
                return .tombstoned
            }
            let life = try freshLife(row, columnMap: columnMap, sites: context.sites)
            meta.clock = life.clock
            try writeFullRow(try statement(&upsertRowStatement, upsertRowSQL), primaryKey: primaryKey, values: life.values)
            try writeMeta(primaryKey, sequence: sequence, meta)
            if let existing, existing.isAlive { return .updated(columns: Array(0..<columnCount)) }
            return .inserted
        }

        // Same life: merge register by register.
        guard var meta = existing else { return .unchanged }
        var lifeChanged = false
        if try wins(row.lifeVersion, over: meta.lifeHLC, site: meta.lifeSite, sites: context.sites) {
            meta.lifeHLC = row.lifeVersion.hlc.rawValue
            meta.lifeSite = lifeSite
            lifeChanged = true
        }
        var changedColumns: [Int] = []
        var changedValues: [Value] = []
        if meta.isAlive {
            for cell in row.cells {
                let column = columnMap[cell.column]
                guard try wins(cell.version, over: meta.clock.hlc(column), site: meta.clock.site(column), sites: context.sites) else {
                    continue
                }
                meta.clock.set(column, hlc: cell.version.hlc.rawValue, site: try context.sites.number(for: cell.version.origin))
                if let position = changedColumns.firstIndex(of: column) {
                    // The same column twice in one row: the later, higher version replaces the earlier.
                    changedValues[position] = cell.value
                } else {
                    changedColumns.append(column)
                    changedValues.append(cell.value)
                }
            }
        }
        guard lifeChanged || !changedColumns.isEmpty else { return .unchanged }
        if !changedColumns.isEmpty {
            // Keep the UPDATE statement cache small: always update columns in ascending order.
            let order = changedColumns.indices.sorted { changedColumns[$0] < changedColumns[$1] }
            try updateColumns(primaryKey: primaryKey, columns: order.map { changedColumns[$0] }, values: order.map { changedValues[$0] })
        }
        try writeMeta(primaryKey, sequence: context.nextSequence(), meta)
        return changedColumns.isEmpty ? .unchanged : .updated(columns: changedColumns.sorted())
    }

    // MARK: Versions

    func currentLife(primaryKey: String, sites: SiteTable) throws -> (causalLength: UInt64, version: Version)? {
        guard let meta = try readMeta(primaryKey), meta.isAlive else { return nil }
        return (meta.causalLength, try sites.version(hlc: meta.lifeHLC, site: meta.lifeSite))
    }

    func cellVersion(primaryKey: String, column: Int, sites: SiteTable) throws -> Version? {
        guard let meta = try readMeta(primaryKey), meta.isAlive else { return nil }
        let site = meta.clock.site(column)
        guard site != 0 else { return nil }
        return try sites.version(hlc: meta.clock.hlc(column), site: site)
    }

    func forEachRowVersion(sites: SiteTable, _ body: (String, Version) throws -> Void) throws {
        try database.cachedStatement(rowVersionsSQL).forEachRow { row in
            try body(row.text(0) ?? "", try sites.version(hlc: UInt64(bitPattern: row.int64(1)), site: UInt32(truncatingIfNeeded: row.int64(2))))
        }
    }

    private var rowVersionsSQL: String { "SELECT pk, cl_hlc, cl_site FROM \(metaName) WHERE cl % 2 = 1" }

    // MARK: Reading changes

    func changes(since sequence: UInt64, through: UInt64, limit: Int, filter: SiteFilter, sites: SiteTable,
                 into rows: inout [SequencedRow]) throws -> ChangeScan {
        var scan = ChangeScan()
        let statement = try statement(&changesStatement, changesSQL)
        try statement.bind(Int64(bitPattern: sequence), at: 1)
        try statement.bind(Int64(limit), at: 2)
        try statement.bind(Int64(bitPattern: min(through, UInt64(Int64.max))), at: 3)
        defer { statement.reset() }
        while try statement.step() {
            let primaryKey = statement.text(at: 0) ?? ""
            let rowSequence = UInt64(bitPattern: statement.int64(at: 1))
            scan.count += 1
            scan.lastSequence = rowSequence
            let causalLength = UInt64(bitPattern: statement.int64(at: 2))
            let lifeHLC = UInt64(bitPattern: statement.int64(at: 3))
            let lifeSite = UInt32(truncatingIfNeeded: statement.int64(at: 4))
            let clock = try statement.withBlob(at: 5) { bytes throws(SyncError) in
                try CellClock(bytes: bytes, columnCount: columnCount, table: tableName)
            }
            // The filter picks rows, never cells: a row goes whole or not at all, because the
            // receiver decides scope from the row's values (its store), which another writer may
            // have set. A row qualifies when the filter admits its life version or one cell.
            let alive = causalLength % 2 == 1
            var qualifies = filter.admits(lifeSite)
            if !qualifies && alive {
                for column in 0..<columnCount where clock.site(column) != 0 && filter.admits(clock.site(column)) {
                    qualifies = true
                    break
                }
            }
            guard qualifies else { continue }
            var cells: [Cell] = []
            if alive {
                cells.reserveCapacity(columnCount)
                // Every written cell of the row, not only those changed after `sequence`: a cell
                // changed inside an earlier page's range, on a row that changed again after that
                // page was cut, would otherwise never be sent (the page's cursor passed it).
                for column in 0..<columnCount where clock.site(column) != 0 {
                    cells.append(Cell(
                        column: column,
                        value: statement.value(at: Int32(6 + column)),
                        version: try sites.version(hlc: clock.hlc(column), site: clock.site(column))))
                }
            }
            rows.append(SequencedRow(sequence: rowSequence, row: RowChange(
                primaryKey: primaryKey, causalLength: causalLength,
                lifeVersion: try sites.version(hlc: lifeHLC, site: lifeSite), cells: cells)))
        }
        return scan
    }

    func sequences(since sequence: UInt64, limit: Int, into sequences: inout [UInt64]) throws {
        try appendSequences(of: try statement(&sequencesStatement, sequencesSQL), since: sequence, limit: limit, into: &sequences)
    }

    func sequenceHighWater() throws -> UInt64 {
        let statement = try database.cachedStatement("SELECT max(seq) FROM \(metaName)")
        defer { statement.reset() }
        guard try statement.step() else { return 0 }
        return UInt64(bitPattern: statement.int64(at: 0))
    }

    func clockHighWater() throws -> UInt64 {
        var high: UInt64 = 0
        try database.prepare("SELECT cl_hlc, clock FROM \(metaName)").forEachRow { row in
            let clock = try row.withBlob(1) { bytes throws(SyncError) in
                try CellClock(bytes: bytes, columnCount: columnCount, table: tableName)
            }
            high = max(high, UInt64(bitPattern: row.int64(0)), clock.highestHLC)
        }
        return high
    }

    func changedRowCount(since sequence: UInt64) throws -> Int {
        Int(try database.fetchScalar("SELECT count(*) FROM \(metaName) WHERE seq > ?", [.integer(Int64(bitPattern: sequence))])?.integerValue ?? 0)
    }

    func dump(includeVersions: Bool, sites: SiteTable, into text: inout String) throws {
        try database.cachedStatement(dumpSQL).forEachRow { row in
            text += tableName
            for index in 0..<row.count {
                text += "|" + canonicalText(row[index])
            }
            text += "\n"
        }
        guard includeVersions else { return }
        try database.cachedStatement(dumpMetaSQL).forEachRow { row in
            let clock = try row.withBlob(4) { bytes throws(SyncError) in
                try CellClock(bytes: bytes, columnCount: columnCount, table: tableName)
            }
            let life = try sites.version(hlc: UInt64(bitPattern: row.int64(2)), site: UInt32(truncatingIfNeeded: row.int64(3)))
            text += "~\(tableName)|\(row.text(0) ?? "")|cl\(row.int64(1))|\(life)"
            for column in 0..<columnCount {
                text += "|" + (try sites.version(hlc: clock.hlc(column), site: clock.site(column))).description
            }
            text += "\n"
        }
    }

    func restamp(localSite: UInt32, above ceiling: UInt64, in context: WriteContext) throws -> Int {
        var keys: [String] = []
        try database.prepare("SELECT pk, cl_hlc, cl_site, clock FROM \(metaName)").forEachRow { row in
            var suspect = row.int64(1) > Int64(bitPattern: ceiling) && UInt32(truncatingIfNeeded: row.int64(2)) == localSite
            if !suspect {
                let clock = try row.withBlob(3) { bytes throws(SyncError) in
                    try CellClock(bytes: bytes, columnCount: columnCount, table: tableName)
                }
                suspect = (0..<columnCount).contains { clock.hlc($0) > ceiling && clock.site($0) == localSite }
            }
            if suspect, let key = row.text(0) { keys.append(key) }
        }
        for key in keys {
            guard var meta = try readMeta(key) else { continue }
            let hlc = context.stamp()
            let sequence = context.nextSequence()
            if meta.lifeHLC > ceiling && meta.lifeSite == localSite { meta.lifeHLC = hlc }
            for column in 0..<columnCount where meta.clock.hlc(column) > ceiling && meta.clock.site(column) == localSite {
                meta.clock.set(column, hlc: hlc, site: localSite)
            }
            try writeMeta(key, sequence: sequence, meta)
        }
        return keys.count
    }
}
