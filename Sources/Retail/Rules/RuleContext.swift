import SQLite
import SyncEngine

/// The rules' prepared statements for one connection, kept across batches: the hot paths never
/// re-parse SQL, and find a statement by a short name rather than by hashing its text.
///
/// It holds its connection strongly (a weak reference would put every retain of the connection
/// object on the slow path): one `RetailRules` per replica, as a hub has.
final class StatementCache {
    let database: Database
    private var statements: [String: Statement] = [:]

    init(_ database: Database) {
        self.database = database
    }

    func statement(_ name: String, _ sql: String) throws -> Statement {
        if let prepared = statements[name] {
            prepared.reset()
            return prepared
        }
        let prepared = try database.prepare(sql)
        statements[name] = prepared
        return prepared
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
