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
/// Every table's first `limit` changes are candidates; a table that has `limit` or more may
/// hold more, so the batch ends before the first sequence it did not offer. `latestSequence`
/// gives the highest sequence visible in the transaction's snapshot: the batch covers
/// everything up to it when no table was cut short. Rows outside `scope` are dropped but still
/// covered by the batch's `toSequence`; a batch can therefore be empty and still say `more`.
/// Of more than `limit` rows in scope, the batch keeps the first `limit` and ends at the last.
///
/// The candidates' sequences come from the tables' sequence indexes; rows are then read in
/// windows of sequences, lowest first, only as far as the batch needs them: when the changes of
/// several tables interleave (a hub's log), reading `limit` rows from every table decoded up to
/// `limit` rows per table for a batch that keeps `limit` in all.
func readChanges(
    database: Database, tables: [any ReplicatedTable], sites: SiteTable,
    since sequence: UInt64, limit: Int, excluding peer: ReplicaID?, onlyLocalWrites: Bool, scope: (any RowScope)?,
    localID: ReplicaID, previousIDs: [ReplicaID], latestSequence: () throws -> UInt64
) throws -> ChangeBatch {
    try storage {
        try database.transaction(.deferred) {
            // A peer we never heard of wrote nothing we hold.
            var filter = SiteFilter.all
            filter.excluded = try peer.flatMap { try sites.currentNumber(for: $0) }
            if onlyLocalWrites {
                // An identity with no number yet never wrote; with none at all, nothing matches.
                filter.only = try ([localID] + previousIDs).compactMap { try sites.currentNumber(for: $0) }
            }
            let latest = max(sequence, try latestSequence())
            var cut = latest
            var candidates: [UInt64] = []
            // Each table's lowest and highest candidate, to skip tables with nothing in a window.
            var spans: [ClosedRange<UInt64>?] = []
            for table in tables {
                let before = candidates.count
                try table.sequences(since: sequence, limit: limit, into: &candidates)
                let offered = candidates[before...]
                if offered.count >= limit, let last = offered.last { cut = min(cut, last) }
                spans.append(offered.first.flatMap { first in offered.last.map { first...$0 } })
            }
            candidates = candidates.filter { $0 <= cut }.sorted()

            let columns = scope == nil ? [] : tables.map { $0.schema.columns.map(\.name) }
            var rows: [SequencedRow] = []
            var tableOfRow: [Int] = []
            var lower = sequence
            var consumed = 0
            // One row more than `limit` in scope tells that the batch must end before the cut.
            while consumed < candidates.count && rows.count <= limit {
                let end = min(candidates.count, consumed + limit + 1 - rows.count)
                let upper = candidates[end - 1]
                for (index, table) in tables.enumerated() {
                    guard let span = spans[index], span.lowerBound <= upper, span.upperBound > lower else { continue }
                    let before = rows.count
                    _ = try table.changes(since: lower, through: upper, limit: limit, filter: filter, sites: sites, into: &rows)
                    if let scope {
                        let name = table.name
                        rows[before...].removeAll { !scope.admits($0.row, of: name, columns: columns[index]) }
                    }
                    tableOfRow.append(contentsOf: repeatElement(index, count: rows.count - before))
                }
                consumed = end
                lower = upper
            }
            var toSequence = cut
            var order = rows.indices.sorted { rows[$0].sequence < rows[$1].sequence }
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
