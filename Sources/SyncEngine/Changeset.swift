/// A batch of row changes produced by one replica's `changes(since:)` and merged by another's `apply(_:)`.
///
/// Table and column names appear once per table, not once per cell; a cell names its
/// column by index into `TableChanges.columns`.
public struct Changeset: Sendable, Hashable {
    /// The replica that produced the batch (not necessarily the origin of every cell: hubs relay).
    public var source: ReplicaID
    /// The batch covers the source's local sequence numbers in `(fromSequence, toSequence]`.
    /// A receiver that applied it may ask next for changes after `toSequence`.
    public var fromSequence: UInt64
    public var toSequence: UInt64
    public var tables: [TableChanges]

    public init(source: ReplicaID, fromSequence: UInt64, toSequence: UInt64, tables: [TableChanges]) {
        self.source = source
        self.fromSequence = fromSequence
        self.toSequence = toSequence
        self.tables = tables
    }

    public var isEmpty: Bool { tables.allSatisfy { $0.rows.isEmpty } }
    public var rowCount: Int { tables.reduce(0) { $0 + $1.rows.count } }
    public var cellCount: Int { tables.reduce(0) { $0 + $1.rows.reduce(0) { $0 + $1.cells.count } } }
}

/// The changes of one table in a changeset.
public struct TableChanges: Sendable, Hashable {
    public var table: TableName
    /// Columns referred to by `Cell.column`; the primary key is never among them.
    public var columns: [ColumnName]
    public var rows: [RowChange]

    public init(table: TableName, columns: [ColumnName], rows: [RowChange]) {
        self.table = table
        self.columns = columns
        self.rows = rows
    }
}

/// The state of one row as far as the batch knows it.
///
/// `causalLength` counts the row's lives: odd means the row exists, even means it was
/// deleted; every delete and every re-insert adds one. A higher causal length wins over
/// everything of a lower one; within one life, each cell is its own last-writer-wins register.
public struct RowChange: Sendable, Hashable {
    public var primaryKey: String
    public var causalLength: UInt64
    /// The version of the write that started this life (insert, delete or re-insert).
    public var lifeVersion: Version
    public var cells: [Cell]

    public init(primaryKey: String, causalLength: UInt64, lifeVersion: Version, cells: [Cell]) {
        self.primaryKey = primaryKey
        self.causalLength = causalLength
        self.lifeVersion = lifeVersion
        self.cells = cells
    }

    public var isDeleted: Bool { causalLength % 2 == 0 }
}

/// One column value with the version of the write that set it.
public struct Cell: Sendable, Hashable {
    /// Index into the table's `TableChanges.columns`.
    public var column: Int
    public var value: Value
    public var version: Version

    public init(column: Int, value: Value, version: Version) {
        self.column = column
        self.value = value
        self.version = version
    }
}
