/// A changeset checked against the local schema, ready to merge.
struct MergePlan {
    struct Step {
        var table: any ReplicatedTable
        var changes: TableChanges
        /// `columnMap[i]` is the local column of the changeset's column `i`.
        var columnMap: [Int]
    }

    var changeset: Changeset
    var steps: [Step]
    var highestHLC: HLCTimestamp
}

extension ReplicaCore {
    /// Validates everything before anything touches the file, so a bad batch changes nothing:
    /// tables and columns must be registered, cells must name a column of their table, causal
    /// lengths start at 1, and no version may be beyond the clock-skew bound.
    func plan(_ changeset: Changeset) throws(SyncError) -> MergePlan {
        var steps: [MergePlan.Step] = []
        var highest = HLCTimestamp.zero
        for tableChanges in changeset.tables {
            let table = try table(tableChanges.table)
            var columnMap: [Int] = []
            columnMap.reserveCapacity(tableChanges.columns.count)
            for column in tableChanges.columns {
                guard let index = table.schema.columnIndex(of: column) else {
                    throw SyncError.unknownColumn(table: tableChanges.table.rawValue, column: column.rawValue)
                }
                columnMap.append(index)
            }
            for row in tableChanges.rows {
                guard row.causalLength > 0 else {
                    throw SyncError.invalidChangeset("row with causal length 0 in \(tableChanges.table)")
                }
                highest = max(highest, row.lifeVersion.hlc)
                for cell in row.cells {
                    guard cell.column >= 0, cell.column < columnMap.count else {
                        throw SyncError.invalidChangeset("cell refers to column \(cell.column) of \(columnMap.count) in \(tableChanges.table)")
                    }
                    highest = max(highest, cell.version.hlc)
                }
            }
            steps.append(MergePlan.Step(table: table, changes: tableChanges, columnMap: columnMap))
        }
        try context.clock.check(highest)
        return MergePlan(changeset: changeset, steps: steps, highestHLC: highest)
    }

    /// Merges a planned changeset inside the caller's transaction.
    func merge(_ plan: MergePlan, recordCursor: Bool, localID: ReplicaID, in context: WriteContext) throws -> ApplyResult {
        var result = ApplyResult()
        for step in plan.steps {
            for row in step.changes.rows {
                let outcome = try step.table.merge(row, columnMap: step.columnMap, in: context)
                result.record(outcome, table: step.changes.table, primaryKey: row.primaryKey)
            }
        }
        // Later local writes order after everything just merged.
        try context.clock.observe(plan.highestHLC)
        let changeset = plan.changeset
        if recordCursor && changeset.source != localID {
            let cursor = try ReplicaStore.cursor(database, peer: changeset.source)
            if changeset.fromSequence <= cursor.received {
                try ReplicaStore.advanceReceived(database, peer: changeset.source, to: changeset.toSequence,
                                                 now: context.clock.wallMilliseconds())
                result.receivedCursor = max(cursor.received, changeset.toSequence)
            }
        }
        return result
    }
}
