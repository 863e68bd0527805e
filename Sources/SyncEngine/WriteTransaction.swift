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
