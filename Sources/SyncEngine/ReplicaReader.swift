import Foundation
public import SQLite

/// A read-only connection to a replica file, for serving pulls and queries while the writer
/// merges: in WAL mode readers never block the writer and never see a half-written transaction.
///
/// The connection and its statements live in a `ReaderCore` that a `ConnectionOwner` owns;
/// every call is one read transaction on it.
public final class ReplicaReader: Sendable {
    public let replicaID: ReplicaID
    /// The replica's earlier identities: their rows count as its local writes.
    public let previousIDs: [ReplicaID]
    private let core: ConnectionOwner<ReaderCore>

    init(path: String, replicaID: ReplicaID, previousIDs: [ReplicaID], schema: [TableSchema]) throws {
        var options = Database.Options()
        options.readOnly = true
        options.cacheSizeKiB = 2 * 1024
        let database = try storage { try Database(path: path, options: options) }
        let tables = try storage { try schema.sorted { $0.name < $1.name }.map { try makeTable($0, database: database) } }
        let sites = try storage { try SiteTable(database: database) }
        self.replicaID = replicaID
        self.previousIDs = previousIDs
        self.core = ConnectionOwner(ReaderCore(database: database, tables: tables, sites: sites),
                                    closedError: { SyncError.storage(SQLiteError(code: 21 /* SQLITE_MISUSE */, message: "reader closed")) })
    }

    /// Same contract as `Replica.changes(since:limit:excluding:onlyLocalWrites:scope:)`, from this reader's snapshot.
    public func changes(
        since sequence: UInt64, limit: Int = Int(Int32.max), excluding peer: ReplicaID? = nil, onlyLocalWrites: Bool = false,
        scope: (any RowScope)? = nil
    ) throws -> Changeset {
        try nextBatch(since: sequence, limit: limit, excluding: peer, onlyLocalWrites: onlyLocalWrites, scope: scope).changeset
    }

    /// Like `changes(since:limit:excluding:onlyLocalWrites:scope:)`, and says whether more changes follow the batch.
    public func nextBatch(
        since sequence: UInt64, limit: Int = Int(Int32.max), excluding peer: ReplicaID? = nil, onlyLocalWrites: Bool = false,
        scope: (any RowScope)? = nil
    ) throws -> ChangeBatch {
        try core.withState { core in
            return try readChanges(database: core.database, tables: core.tables, sites: core.sites, since: sequence,
                                   limit: max(1, limit), excluding: peer, onlyLocalWrites: onlyLocalWrites, scope: scope,
                                   localID: replicaID, previousIDs: previousIDs) {
                try sequenceHighWater(of: core.tables)
            }
        }
    }

    /// The highest change sequence of one table: a cheap way to tell whether it changed.
    public func latestSequence(of table: TableName) throws -> UInt64 {
        try core.withState { core in
            guard let replicated = core.tables.first(where: { $0.name == table }) else {
                throw SyncError.unknownTable(table.rawValue)
            }
            return try storage { try replicated.sequenceHighWater() }
        }
    }

    /// Same contract as `Replica.forEachRowVersion(in:_:)`, from this reader's snapshot.
    public func forEachRowVersion(in table: TableName, _ body: (String, Version) throws -> Void) throws {
        try core.withState { core in
            guard let replicated = core.tables.first(where: { $0.name == table }) else {
                throw SyncError.unknownTable(table.rawValue)
            }
            try passingDomainErrors {
                try core.database.transaction(.deferred) {
                    try replicated.forEachRowVersion(sites: core.sites, body)
                }
            }
        }
    }

    /// Runs queries on the reader's connection, in one read transaction (one snapshot for every
    /// statement of `body`). Errors `body` throws come out as themselves.
    public func read<T: Sendable>(_ body: (Database) throws -> T) throws -> T {
        try core.withState { core in
            try passingDomainErrors { try core.database.transaction(.deferred) { try body(core.database) } }
        }
    }
}

final class ReaderCore {
    let database: Database
    let tables: [any ReplicatedTable]
    let sites: SiteTable

    init(database: Database, tables: [any ReplicatedTable], sites: SiteTable) {
        self.database = database
        self.tables = tables
        self.sites = sites
    }
}

extension Replica {
    /// Opens a reader on the same file. Not available for in-memory replicas (they have one connection).
    public func makeReader() throws -> ReplicaReader {
        guard isFileBacked else {
            throw SyncError.notAReplica(path: "\(path) (an in-memory replica has no separate readers)")
        }
        return try ReplicaReader(path: path, replicaID: id, previousIDs: previousIDs, schema: tables)
    }
}
