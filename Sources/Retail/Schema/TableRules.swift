public import SQLite
public import SyncEngine

/// Who may write a table's rows (Protocol/SCHEMA.md; enforced per credential by issue 10's
/// authorization, described here so the spec and the code state it once).
public enum TableWriter: String, Sendable, Hashable, CaseIterable {
    /// A store's terminal, for rows of its own store.
    case terminal
    /// A hub's operator (`storesync store add`, `threshold set`), at HQ or a regional hub.
    case hub
    /// The central rules, run by every hub with derived keys and the rules' origins.
    case rules
}

/// One column of the application schema: required or optional, and what a non-NULL value must be.
public struct ColumnRule: Sendable, Hashable {
    public var name: ColumnName
    /// A required column is present and non-NULL in every live row; an optional one may be
    /// NULL or left out (then NULL).
    public var required: Bool
    public var rule: ValueRule

    public init(_ name: ColumnName, required: Bool, _ rule: ValueRule) {
        self.name = name
        self.required = required
        self.rule = rule
    }

    /// Why `value` does not fit the column, or nil.
    public func violation(_ value: SQLValue) -> SchemaViolation.Reason? {
        if case .null = value { return required ? .null : nil }
        return rule.violation(value)
    }
}

/// The application schema of one replicated table: what the engine's `TableSchema` leaves open
/// (storage classes, bounds, required columns, the key's format, who writes it).
public struct TableRules: Sendable {
    public var schema: TableSchema
    public var key: TextFormat
    public var writers: [TableWriter]
    /// In the order of `schema.columns`.
    public var columns: [ColumnRule]
    private let indexOf: [ColumnName: Int]

    init(_ schema: TableSchema, key: TextFormat, writers: [TableWriter], _ columns: [ColumnRule]) {
        // The rules are literals beside the schema: a mismatch is a programming error the first test run catches.
        precondition(columns.map(\.name) == schema.columns.map(\.name), "rules of \(schema.name) do not list its columns in order")
        self.schema = schema
        self.key = key
        self.writers = writers
        self.columns = columns
        var indexOf: [ColumnName: Int] = [:]
        for (index, column) in columns.enumerated() { indexOf[column.name] = index }
        self.indexOf = indexOf
    }

    public var name: TableName { schema.name }

    public func column(_ name: ColumnName) -> ColumnRule? { indexOf[name].map { columns[$0] } }

    func violation(_ reason: SchemaViolation.Reason, column: String, row: String?) -> SchemaViolation {
        SchemaViolation(table: name.rawValue, column: column, reason: reason, row: row)
    }

    /// The key as a refusal may name it: only when it has the table's format (see `SchemaViolation.row`).
    func printableKey(_ key: String) -> String? { self.key.violation(key) == nil ? key : nil }

    /// Checks a row a local write is about to make: every given value, and for a new row
    /// (`whole`) its key and every required column. An update names no key to check: the row
    /// exists already. Columns outside the table are the engine's to refuse.
    public func check(key: String, _ values: [ColumnName: SQLValue], whole: Bool) throws(SchemaViolation) {
        if whole, let reason = self.key.violation(key) { throw violation(reason, column: schema.primaryKey.rawValue, row: nil) }
        let row = printableKey(key)
        for column in columns {
            if let value = values[column.name] {
                if let reason = column.violation(value) { throw violation(reason, column: column.name.rawValue, row: row) }
            } else if whole && column.required {
                throw violation(.missing, column: column.name.rawValue, row: row)
            }
        }
    }

    /// `check` for the retail write paths, whose refusals are `RetailError`s: nil when the row fits.
    func refusal(key: String, _ values: [ColumnName: SQLValue], whole: Bool) -> RetailError? {
        do {
            try check(key: key, values, whole: whole)
            return nil
        } catch {
            return .schemaViolation(error)
        }
    }
}
