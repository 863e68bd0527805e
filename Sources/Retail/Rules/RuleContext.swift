import SQLite
import SyncEngine

/// The rules' prepared statements, by a short name: the replica whose transaction the rules
/// judge prepares each once on its own connection and keeps it (`WriteTransaction.preparedStatement`),
/// so the hot paths never re-parse SQL and no statement outlives or crosses its replica.
final class StatementCache {
    let tx: WriteTransaction

    init(_ tx: WriteTransaction) {
        self.tx = tx
    }

    func statement(_ name: String, _ sql: String) throws -> Statement {
        try tx.preparedStatement(name, sql)
    }
}

/// What a rule works with while it judges a batch: the merge's transaction and the statements.
struct RuleContext {
    let tx: WriteTransaction
    let statements: StatementCache

    var database: Database { tx.database }

    func statement(_ name: String, _ sql: String) throws -> Statement { try statements.statement(name, sql) }

    /// The rows of a prepared query.
    func rows(_ name: String, _ sql: String, _ values: [SQLValue]) throws -> [[SQLValue]] {
        try statement(name, sql).fetchAll(values)
    }

    /// The first column of the first row of a prepared query, or nil.
    func scalar(_ name: String, _ sql: String, _ values: [SQLValue]) throws -> SQLValue? {
        try statement(name, sql).fetchOne(values)?.first
    }

    func version(of table: TableName, primaryKey: String, column: ColumnName) throws -> Version? {
        try tx.version(of: table, primaryKey: primaryKey, column: column)
    }

    func lifeVersion(of table: TableName, primaryKey: String) throws -> Version? {
        try tx.lifeVersion(of: table, primaryKey: primaryKey)
    }

    @discardableResult
    func insert(into table: TableName, primaryKey: String, _ values: [ColumnName: Value], version: Version) throws -> Bool {
        try tx.insert(into: table, primaryKey: primaryKey, values, version: version)
    }

    @discardableResult
    func update(_ table: TableName, primaryKey: String, set values: [ColumnName: Value], version: Version) throws -> Bool {
        try tx.update(table, primaryKey: primaryKey, set: values, version: version)
    }
}
