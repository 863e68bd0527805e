/// How a replicated table merges.
public enum TableKind: String, Sendable, Hashable {
    /// Every column is its own last-writer-wins register; rows can be updated, deleted and re-inserted.
    case lastWriterWins = "lww"
    /// Rows are immutable once written and identified by a globally unique key; merging is set union.
    case insertOnly = "insert_only"
}

/// The declared type (and so the SQLite affinity) of a column.
public enum ColumnType: String, Sendable, Hashable {
    case integer = "INTEGER"
    case real = "REAL"
    case text = "TEXT"
    case blob = "BLOB"
}

public struct ColumnDefinition: Sendable, Hashable {
    public var name: ColumnName
    public var type: ColumnType

    public init(_ name: ColumnName, _ type: ColumnType) {
        self.name = name
        self.type = type
    }
}

/// A replicated table as the engine creates it: a plain SQL table whose primary key is
/// a text key generated on the device, plus columns that are ordinary, nullable SQL columns.
public struct TableSchema: Sendable, Hashable {
    public var name: TableName
    public var kind: TableKind
    public var primaryKey: ColumnName
    /// The columns other than the primary key, in the order `insert` takes values.
    public var columns: [ColumnDefinition]
    /// Secondary indexes for queries, each a list of columns.
    public var indexes: [[ColumnName]]

    public init(
        name: TableName, kind: TableKind, primaryKey: ColumnName,
        columns: [ColumnDefinition], indexes: [[ColumnName]] = []
    ) throws(SyncError) {
        var seen: Set<ColumnName> = [primaryKey]
        for column in columns where !seen.insert(column.name).inserted {
            throw SyncError.schemaMismatch(table: name.rawValue, reason: "column \(column.name) is declared twice")
        }
        guard !columns.isEmpty, columns.count <= 1000 else {
            throw SyncError.schemaMismatch(table: name.rawValue, reason: "a table needs 1 to 1000 columns besides its key")
        }
        for index in indexes {
            for column in index where !seen.contains(column) {
                throw SyncError.unknownColumn(table: name.rawValue, column: column.rawValue)
            }
        }
        self.name = name
        self.kind = kind
        self.primaryKey = primaryKey
        self.columns = columns
        self.indexes = indexes
    }

    /// Convenience for schemas written in code: names are checked, types given as pairs.
    public init(
        _ name: String, kind: TableKind, primaryKey: String = "id",
        columns: [(String, ColumnType)], indexes: [[String]] = []
    ) throws(SyncError) {
        var definitions: [ColumnDefinition] = []
        for (columnName, type) in columns {
            definitions.append(ColumnDefinition(try ColumnName(columnName), type))
        }
        var indexNames: [[ColumnName]] = []
        for index in indexes {
            var names: [ColumnName] = []
            for column in index { names.append(try ColumnName(column)) }
            indexNames.append(names)
        }
        try self.init(
            name: try TableName(name), kind: kind, primaryKey: try ColumnName(primaryKey),
            columns: definitions, indexes: indexNames)
    }

    /// Index of a column among `columns`.
    public func columnIndex(of name: ColumnName) -> Int? {
        columns.firstIndex { $0.name == name }
    }

    /// A stable text form, stored in `sync_tables` to detect a schema that changed under a replica.
    var signature: String {
        "\(kind.rawValue);\(primaryKey);" + columns.map { "\($0.name) \($0.type.rawValue)" }.joined(separator: ",")
    }
}

/// `"name"`: a checked identifier quoted for SQL. Identifiers are validated to `[a-z_][a-z0-9_]*`,
/// so quoting is a formality, never a way to smuggle SQL.
func quoted(_ identifier: String) -> String { "\"\(identifier)\"" }
