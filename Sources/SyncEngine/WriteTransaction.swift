public import SQLite

/// The local writes of one `Replica.write` call. Valid only inside that call.
public final class WriteTransaction {
    private let core: ReplicaCore
    private let context: WriteContext
    var isOpen = true
    /// Batches write one table many times in a row: skip the dictionary for a repeat.
    private var lastTable: (any ReplicatedTable)?

    init(core: ReplicaCore, context: WriteContext) {
        self.core = core
        self.context = context
    }

    private func table(_ name: TableName) throws -> any ReplicatedTable {
        precondition(isOpen, "a WriteTransaction was used after its write block returned")
        if let lastTable, lastTable.name == name { return lastTable }
        let table = try core.table(name)
        lastTable = table
        return table
    }

    /// Inserts a row with `values` in the table's column order (primary key excluded).
    public func insert(into tableName: TableName, primaryKey: String, values: [Value]) throws {
        let table = try table(tableName)
        guard values.count == table.columnCount else {
            throw SyncError.schemaMismatch(table: tableName.rawValue, reason: "insert has \(values.count) values for \(table.columnCount) columns")
        }
        try table.insertLocal(primaryKey: primaryKey, values: values, in: context)
    }

    /// Inserts a row from named values; columns left out are NULL.
    public func insert(into tableName: TableName, primaryKey: String, _ values: [ColumnName: Value]) throws {
        let table = try table(tableName)
        var row = [Value](repeating: .null, count: table.schema.columns.count)
        for (name, value) in values {
            guard let index = table.schema.columnIndex(of: name) else {
                throw SyncError.unknownColumn(table: tableName.rawValue, column: name.rawValue)
            }
            row[index] = value
        }
        try table.insertLocal(primaryKey: primaryKey, values: row, in: context)
    }

    /// Sets some columns of a live row. Each set column gets a new version; the others keep theirs,
    /// so a concurrent edit of another column elsewhere survives the merge.
    public func update(_ tableName: TableName, primaryKey: String, set values: [ColumnName: Value]) throws {
        let table = try table(tableName)
        var columns: [Int] = []
        for name in values.keys {
            guard let index = table.schema.columnIndex(of: name) else {
                throw SyncError.unknownColumn(table: tableName.rawValue, column: name.rawValue)
            }
            columns.append(index)
        }
        guard !columns.isEmpty else { return }
        columns.sort()
        let ordered = columns.map { values[table.schema.columns[$0].name] ?? .null }
        try table.updateLocal(primaryKey: primaryKey, columns: columns, values: ordered, in: context)
    }

    /// Deletes a live row. A later insert of the same key starts a new life of the row.
    public func delete(from tableName: TableName, primaryKey: String) throws {
        try table(tableName).deleteLocal(primaryKey: primaryKey, in: context)
    }
}

// MARK: Reading inside the transaction, and derived writes (central rules)

extension WriteTransaction {
    /// The replica's connection, inside this transaction: for queries that must see the
    /// transaction's own writes, and for tables of the caller's own that do not replicate
    /// (state a central rule keeps). A replicated table written through it gets no version and
    /// never replicates: write those through `insert` and `update`.
    public var database: Database {
        precondition(isOpen, "a WriteTransaction was used after its write block returned")
        return context.database
    }

    /// A prepared statement on the replica's connection, prepared once per replica under
    /// `name` and reset for reuse: for code that runs inside many transactions (central rules),
    /// so its hot paths never re-parse SQL and the statements belong to the replica that owns
    /// their connection. `sql` must be the same text for every use of one name. Valid only
    /// inside this transaction's block.
    public func preparedStatement(_ name: String, _ sql: String) throws -> Statement {
        precondition(isOpen, "a WriteTransaction was used after its write block returned")
        if let prepared = core.namedStatements[name] {
            prepared.reset()
            return prepared
        }
        let prepared = try context.database.prepare(sql)
        core.namedStatements[name] = prepared
        return prepared
    }

    /// The version of one cell of a live row of a last-writer-wins table: nil when the row is
    /// missing or deleted, or the cell was never written.
    public func version(of tableName: TableName, primaryKey: String, column: ColumnName) throws -> Version? {
        let table = try table(tableName)
        guard let index = table.schema.columnIndex(of: column) else {
            throw SyncError.unknownColumn(table: tableName.rawValue, column: column.rawValue)
        }
        return try table.cellVersion(primaryKey: primaryKey, column: index, sites: context.sites)
    }

    /// The version of the write that started a live row's current life (its insert or last
    /// re-insert) in a last-writer-wins table; nil when the row is missing or deleted.
    public func lifeVersion(of tableName: TableName, primaryKey: String) throws -> Version? {
        try table(tableName).currentLife(primaryKey: primaryKey, sites: context.sites)?.version
    }

    /// Calls `body` with the key and version of every live row of a table (the row's life version
    /// in a last-writer-wins table, its only version in an insert-only one), in no given order.
    public func forEachRowVersion(in tableName: TableName, _ body: (String, Version) throws -> Void) throws {
        try table(tableName).forEachRowVersion(sites: context.sites, body)
    }

    /// A *derived* insert: the row is merged exactly as if a peer had sent it with every given
    /// cell at `version`, which the caller chooses. Columns left out stay unwritten (NULL).
    ///
    /// Central rules use it so that every hub that derives the same row writes it with the same
    /// version: the copies are then one write, and merging them anywhere, in any order, changes
    /// nothing. It is the caller's promise that one version never carries two different rows.
    /// Returns false when the row was already there (a re-derivation changes nothing).
    @discardableResult
    public func insert(into tableName: TableName, primaryKey: String, _ values: [ColumnName: Value], version: Version) throws -> Bool {
        let table = try table(tableName)
        let cells = try derivedCells(table, values, version: version)
        try context.clock.observe(version.hlc)
        let row = RowChange(primaryKey: primaryKey, causalLength: 1, lifeVersion: version, cells: cells)
        switch try table.merge(row, columnMap: Array(0..<table.columnCount), in: context) {
        case .inserted, .updated: return true
        case .unchanged, .deleted, .tombstoned: return false
        }
    }

    /// A *derived* update of a live row of a last-writer-wins table: each given cell is merged as
    /// if a peer had written it at `version`, so it takes effect only where `version` beats the
    /// cell's current one (and a later write by anyone beats it in turn). Returns whether a cell
    /// changed. Same promise as the derived insert: one version, one value.
    @discardableResult
    public func update(_ tableName: TableName, primaryKey: String, set values: [ColumnName: Value], version: Version) throws -> Bool {
        let table = try table(tableName)
        guard let life = try table.currentLife(primaryKey: primaryKey, sites: context.sites) else {
            throw SyncError.rowNotFound(table: tableName.rawValue, primaryKey: primaryKey)
        }
        let cells = try derivedCells(table, values, version: version)
        try context.clock.observe(version.hlc)
        let row = RowChange(primaryKey: primaryKey, causalLength: life.causalLength, lifeVersion: life.version, cells: cells)
        if case .updated = try table.merge(row, columnMap: Array(0..<table.columnCount), in: context) { return true }
        return false
    }

    private func derivedCells(_ table: any ReplicatedTable, _ values: [ColumnName: Value], version: Version) throws -> [Cell] {
        guard version.origin != .none, version.hlc != .zero else {
            throw SyncError.invalidChangeset("a derived write needs a real version, got \(version)")
        }
        var cells: [Cell] = []
        cells.reserveCapacity(values.count)
        for (name, value) in values {
            guard let index = table.schema.columnIndex(of: name) else {
                throw SyncError.unknownColumn(table: table.name.rawValue, column: name.rawValue)
            }
            cells.append(Cell(column: index, value: value, version: version))
        }
        cells.sort { $0.column < $1.column }
        return cells
    }
}
