/// Which rows a peer may hold: a store's terminal its store's rows, a regional hub its region's.
///
/// The engine knows nothing of stores or regions; the application decides from a row's values.
/// A scope filters what `changes(since:)` returns and what a hub accepts from a peer. Rows left
/// out of a batch are still covered by its `toSequence`, so a peer's cursor moves past them and
/// they are never offered to it again (until they change).
public protocol RowScope: Sendable {
    /// Whether `row` of `table` belongs to this scope. `row` carries every written cell of the
    /// row; a cell's `column` indexes `columns` (the batch's column list for the table).
    func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool

    /// The scope to check one batch against, called once per batch before `admits`: a scope
    /// that depends on reference data (which region a store is in) refreshes it here, and may
    /// take into account reference rows that arrive in `incoming` itself (a pushed batch that
    /// registers a store together with its first rows). `incoming` is nil for outgoing batches.
    func forBatch(_ incoming: Changeset?) throws -> any RowScope
}

extension RowScope {
    public func forBatch(_ incoming: Changeset?) throws -> any RowScope { self }
}

/// The scope of a node that sees everything (HQ).
public struct UnlimitedScope: RowScope {
    public init() {}
    public func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool { true }
}
