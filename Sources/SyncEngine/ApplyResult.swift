/// What `Replica.apply(_:)` changed.
public struct ApplyResult: Sendable, Hashable {
    /// One user-visible row change.
    public struct RowChangeSummary: Sendable, Hashable {
        public var table: TableName
        public var primaryKey: String
        public var outcome: RowOutcome
    }

    public var rowsInserted = 0
    public var rowsUpdated = 0
    public var rowsDeleted = 0
    /// Rows that changed nothing: stale, duplicate or already applied.
    public var rowsUnchanged = 0
    /// Every row whose user table row changed, in the order applied (central rules read this).
    public var changedRows: [RowChangeSummary] = []
    /// The source's sequence we now hold everything up to (nil when the batch left a gap).
    public var receivedCursor: UInt64?

    public var isNoOp: Bool { changedRows.isEmpty }

    mutating func record(_ outcome: RowOutcome, table: TableName, primaryKey: String) {
        switch outcome {
        case .unchanged, .tombstoned:
            rowsUnchanged += 1
            return
        case .inserted: rowsInserted += 1
        case .updated: rowsUpdated += 1
        case .deleted: rowsDeleted += 1
        }
        changedRows.append(RowChangeSummary(table: table, primaryKey: primaryKey, outcome: outcome))
    }
}
