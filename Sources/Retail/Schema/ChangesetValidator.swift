public import SyncEngine

/// Checks every row of a pushed changeset against the application schema before anything of it
/// is applied: a hub calls it on the session's queue (it reads no database), and one violation
/// refuses the whole batch (INVALID_VALUE, Protocol/SCHEMA.md).
///
/// What it checks, per row of a retail table:
/// - the key has the table's format (tombstones too);
/// - every cell holds a value its column takes: storage class, range, length, format;
/// - a live row carries every required column, non-NULL. Rows travel whole: the engine sends
///   every written cell of a live row, and a local insert writes every column, so an honest
///   peer's row always has them, whether the receiver holds the row already or not.
///
/// Tables, columns and cell indexes the local schema does not know are left to the engine,
/// which refuses them with their own codes (UNKNOWN_TABLE, SCHEMA_MISMATCH, BAD_FRAME).
public enum ChangesetValidator {
    public static func check(_ changeset: Changeset) throws(SchemaViolation) {
        for table in changeset.tables {
            guard let rules = RetailSchemaRules.table(table.table) else { continue }
            try check(table, against: rules)
        }
    }

    static func check(_ table: TableChanges, against rules: TableRules) throws(SchemaViolation) {
        let columnRules = table.columns.map { rules.column($0) }
        // Batch column indexes of each required column (a batch may name a column twice).
        let required = rules.columns.filter(\.required).map { rule in
            (rule, table.columns.indices.filter { table.columns[$0] == rule.name })
        }
        for row in table.rows {
            if let reason = rules.key.violation(row.primaryKey) {
                throw rules.violation(reason, column: rules.schema.primaryKey.rawValue, row: nil)
            }
            for cell in row.cells {
                guard columnRules.indices.contains(cell.column), let column = columnRules[cell.column] else { continue }
                if let reason = column.violation(cell.value) {
                    throw rules.violation(reason, column: column.name.rawValue, row: row.primaryKey)
                }
            }
            guard !row.isDeleted else { continue }
            for (rule, indexes) in required where !row.cells.contains(where: { indexes.contains($0.column) }) {
                throw rules.violation(.missing, column: rule.name.rawValue, row: row.primaryKey)
            }
        }
    }
}
