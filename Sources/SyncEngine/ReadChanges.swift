import SQLite

/// One batch of changes and whether more follow it.
public struct ChangeBatch: Sendable, Hashable {
    public var changeset: Changeset
    /// True when the batch was cut short: changes after `changeset.toSequence` exist now.
    public var more: Bool
}

/// Reads one batch of changes after `sequence` in one read transaction, from the writer's
/// connection or a reader's.
///
/// Every table is scanned up to `limit` rows; a table that filled its limit may hold more, so
/// the batch ends before the first sequence it did not read. `latestSequence` gives the
/// highest sequence visible in the transaction's snapshot: the batch covers everything up to
/// it when no table was cut short. Rows outside `scope` are dropped but still covered by the
/// batch's `toSequence`; a batch can therefore be empty and still say `more`.
func readChanges(
    database: Database, tables: [any ReplicatedTable], sites: SiteTable,
    since sequence: UInt64, limit: Int, excluding peer: ReplicaID?, onlyLocalWrites: Bool, scope: (any RowScope)?,
    localID: ReplicaID, latestSequence: () throws -> UInt64
) throws -> ChangeBatch {
    try storage {
        try database.transaction(.deferred) {
            // A peer we never heard of wrote nothing we hold.
            var filter = SiteFilter.all
            filter.excluded = try peer.flatMap { try sites.currentNumber(for: $0) }
            if onlyLocalWrites {
                // With no number yet, this replica never wrote: only an impossible site matches.
                filter.only = try sites.currentNumber(for: localID) ?? UInt32.max
            }
            var rows: [SequencedRow] = []
            var tableOfRow: [Int] = []
            let latest = max(sequence, try latestSequence())
            var toSequence = latest
            for (index, table) in tables.enumerated() {
                let before = rows.count
                let scan = try table.changes(since: sequence, limit: limit, filter: filter, sites: sites, into: &rows)
                tableOfRow.append(contentsOf: repeatElement(index, count: rows.count - before))
                if scan.count >= limit, let last = scan.lastSequence {
                    toSequence = min(toSequence, last)
                }
            }
            var order = rows.indices.filter { rows[$0].sequence <= toSequence }
            if let scope {
                let columns = tables.map { $0.schema.columns.map(\.name) }
                order.removeAll { !scope.admits(rows[$0].row, of: tables[tableOfRow[$0]].name, columns: columns[tableOfRow[$0]]) }
            }
            order.sort { rows[$0].sequence < rows[$1].sequence }
            if order.count > limit {
                order.removeSubrange(limit...)
                toSequence = rows[order[limit - 1]].sequence
            }
            var grouped: [Int: [RowChange]] = [:]
            for position in order {
                grouped[tableOfRow[position], default: []].append(rows[position].row)
            }
            let tableChanges = grouped.keys.sorted().map { index in
                TableChanges(table: tables[index].name, columns: tables[index].schema.columns.map(\.name), rows: grouped[index] ?? [])
            }
            return ChangeBatch(
                changeset: Changeset(source: localID, fromSequence: sequence, toSequence: toSequence, tables: tableChanges),
                more: toSequence < latest)
        }
    }
}
