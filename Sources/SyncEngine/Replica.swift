import Foundation
import LockBox
public import SQLite

/// Settings of a replica that are not stored in its file.
public struct ReplicaOptions: Sendable {
    public var wallClock: WallClock = systemWallClock
    /// How far ahead of our wall clock a remote version may be before it is refused as clock skew.
    public var maxForwardDriftMilliseconds: UInt64 = 5 * 60 * 1000
    public var synchronous: Database.Options.Synchronous = .full

    public init() {}
}

/// A local SQLite replica: plain user tables, and the `sync_` metadata that lets its writes
/// merge with every other replica's in any order, any number of times.
///
/// All access goes through one connection owned by a mutex, so a `Replica` can be shared
/// between threads; every write is one SQLite transaction that also records the change log.
public final class Replica: Sendable {
    public let id: ReplicaID
    public let path: String
    public let clock: HybridLogicalClock
    public let tables: [TableSchema]
    private let core: LockBox<ReplicaCore>

    /// Opens the replica at `path`, creating it (and its random identity) if the file is new.
    /// Every table in `schema` is created if missing and must match what the file recorded.
    public init(path: String, schema: [TableSchema], options: ReplicaOptions = ReplicaOptions()) throws {
        var databaseOptions = Database.Options()
        databaseOptions.synchronous = options.synchronous
        let database = try Database(path: path, options: databaseOptions)
        let state = try storage { () throws -> (ReplicaID, Int64, [any ReplicatedTable], SiteTable, UInt64, UInt64) in
            try database.transaction {
                try database.execute(ReplicaStore.schema)
                try database.execute(SiteTable.schema)
                let id: ReplicaID
                if let stored = try ReplicaStore.value(database, key: "replica_id") {
                    id = try ReplicaID(bytes: stored.blobValue ?? [])
                } else {
                    id = ReplicaID.random()
                    try ReplicaStore.setValue(database, key: "replica_id", .blob(id.bytes))
                    try ReplicaStore.setValue(database, key: "format", .integer(1))
                }
                let offset = try ReplicaStore.value(database, key: "clock_offset_ms")?.integerValue ?? 0
                var tables: [any ReplicatedTable] = []
                for table in schema.sorted(by: { $0.name < $1.name }) {
                    try ReplicaStore.register(database, schema: table)
                    let replicated = try makeTable(table, database: database)
                    try replicated.createStorage()
                    tables.append(replicated)
                }
                let sites = try SiteTable(database: database)
                _ = try sites.number(for: id)
                sites.transactionCommitted()
                let mark = try highWater(of: tables)
                return (id, offset, tables, sites, mark.sequence, mark.hlc)
            }
        }
        let (id, offset, tables, sites, sequence, highestHLC) = state
        self.id = id
        self.path = path
        self.tables = tables.map(\.schema)
        self.clock = HybridLogicalClock(
            wallClock: options.wallClock,
            maxForwardDriftMilliseconds: options.maxForwardDriftMilliseconds,
            last: HLCTimestamp(rawValue: highestHLC),
            offsetMilliseconds: offset)
        let localSite = try storage { try sites.number(for: id) }
        let context = WriteContext(database: database, sites: sites, clock: clock, localSite: localSite, sequence: sequence)
        self.core = LockBox(try storage { try ReplicaCore(database: database, context: context, tables: tables) })
    }

    /// The highest local sequence number: every change this replica holds is at or below it.
    public var latestSequence: UInt64 {
        core.withLockedValue { core in
            // Another process may have written the file (a guide's command beside a live sync).
            try? core.refreshIfOthersWrote()
            return core.context.sequence
        }
    }

    // MARK: Local writes

    /// Runs `body` as one SQLite transaction; its writes and their change-log entries commit
    /// together or not at all.
    public func write<T: Sendable>(_ body: (WriteTransaction) throws -> T) throws -> T {
        try core.withLockedValue { core in
            try core.transaction { context in
                let transaction = WriteTransaction(core: core, context: context)
                defer { transaction.isOpen = false }
                return try body(transaction)
            }
        }
    }

    // MARK: Merging

    /// Merges a changeset from another replica and returns what changed in the user tables.
    ///
    /// The whole batch is applied in one transaction, or nothing is: an unknown table or
    /// column, or a version beyond the clock-skew bound, rejects it with a `SyncError`.
    /// When `recordCursor` is set and the batch continues what we hold from its source, the
    /// source's cursor advances to `toSequence` in the same transaction.
    public func apply(_ changeset: Changeset, recordCursor: Bool = true) throws -> ApplyResult {
        try core.withLockedValue { core in
            let plan = try core.plan(changeset)
            return try core.transaction { context in
                try core.merge(plan, recordCursor: recordCursor, localID: id, in: context)
            }
        }
    }

    /// Group commit: merges several changesets (say, from several sessions) in one transaction.
    ///
    /// A changeset that fails validation (unknown table or column, clock skew, malformed) gets
    /// its own `.failure` and does not stop the others. After each changeset is merged,
    /// `afterEach` runs inside the same transaction with what it changed and may write changes
    /// of its own (central rules); they commit together. If `afterEach` or SQLite fails, the
    /// whole transaction rolls back and this throws: nothing of the group is applied.
    public func apply(
        group changesets: [Changeset], recordCursor: Bool = true,
        afterEach: ((Changeset, ApplyResult, WriteTransaction) throws -> Void)? = nil
    ) throws -> [Result<ApplyResult, SyncError>] {
        try core.withLockedValue { core in
            var plans: [Result<MergePlan, SyncError>] = []
            for changeset in changesets {
                do throws(SyncError) {
                    plans.append(.success(try core.plan(changeset)))
                } catch {
                    plans.append(.failure(error))
                }
            }
            return try core.transaction { context in
                var results: [Result<ApplyResult, SyncError>] = []
                for plan in plans {
                    switch plan {
                    case .failure(let error):
                        results.append(.failure(error))
                    case .success(let plan):
                        let result = try core.merge(plan, recordCursor: recordCursor, localID: id, in: context)
                        if let afterEach {
                            let transaction = WriteTransaction(core: core, context: context)
                            defer { transaction.isOpen = false }
                            try afterEach(plan.changeset, result, transaction)
                        }
                        results.append(.success(result))
                    }
                }
                return results
            }
        }
    }

    // MARK: Reading changes

    /// Every row changed after `sequence`, each with all its written cells (current value,
    /// version, origin), in sequence order, at most `limit` rows. `toSequence` of the result is
    /// where to continue. Rows go whole or not at all: rows that only `excluding` wrote are left
    /// out (that peer has them already); with `onlyLocalWrites`, only rows this replica wrote to
    /// are included (what a leaf replica, a terminal, pushes to the hub that sent it everything
    /// else); rows outside `scope` are left out. Left-out rows are covered by `toSequence`.
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
        try core.withLockedValue { core in
            try storage { try core.refreshIfOthersWrote() }
            return try readChanges(database: core.database, tables: core.tables, sites: core.context.sites, since: sequence,
                            limit: max(1, limit), excluding: peer, onlyLocalWrites: onlyLocalWrites, scope: scope, localID: id,
                            latestSequence: { core.context.sequence })
        }
    }

    // MARK: Cursors

    public func cursor(for peer: ReplicaID) throws -> PeerCursor {
        try core.withLockedValue { core in try storage { try ReplicaStore.cursor(core.database, peer: peer) } }
    }

    public func cursors() throws -> [PeerCursor] {
        try core.withLockedValue { core in try storage { try ReplicaStore.allCursors(core.database) } }
    }

    /// Records that `peer` confirmed holding our changes up to `sequence`.
    public func acknowledge(peer: ReplicaID, upTo sequence: UInt64) throws {
        let now = clock.wallMilliseconds()
        try core.withLockedValue { core in
            try storage { try ReplicaStore.advanceAcknowledged(core.database, peer: peer, to: sequence, now: now) }
        }
    }

    /// Rows changed after `sequence` (for example, after what a peer acknowledged).
    public func changedRowCount(since sequence: UInt64) throws -> Int {
        try core.withLockedValue { core in
            try storage { try core.tables.reduce(0) { $0 + (try $1.changedRowCount(since: sequence)) } }
        }
    }

    // MARK: Settings

    public func setting(_ key: String) throws -> Value? {
        try core.withLockedValue { core in try storage { try ReplicaStore.value(core.database, key: key) } }
    }

    public func setSetting(_ key: String, _ value: Value) throws {
        try core.withLockedValue { core in try storage { try ReplicaStore.setValue(core.database, key: key, value) } }
    }

    // MARK: Reading user tables

    /// Calls `body` with the key and version of every live row of a table (the row's life version
    /// in a last-writer-wins table, its only version in an insert-only one), in no given order:
    /// what an application needs to order rows by version, as every replica does alike.
    public func forEachRowVersion(in table: TableName, _ body: (String, Version) throws -> Void) throws {
        try core.withLockedValue { core in
            try storage {
                try core.database.transaction(.deferred) {
                    try core.table(table).forEachRowVersion(sites: core.context.sites, body)
                }
            }
        }
    }

    /// Runs read-only work on the replica's connection (queries for views, tests).
    public func read<T: Sendable>(_ body: (Database) throws -> T) throws -> T {
        try core.withLockedValue { core in try body(core.database) }
    }

    /// A canonical text of every user table, ordered by table and key, values tagged by type.
    /// Two replicas that converged give byte-identical dumps. With `includeVersions`, the
    /// merge metadata (causal lengths and versions, not local sequences) is dumped too.
    public func canonicalDump(includeVersions: Bool = false) throws -> String {
        try core.withLockedValue { core in
            try storage {
                try core.database.transaction(.deferred) {
                    var text = ""
                    for table in core.tables {
                        try table.dump(includeVersions: includeVersions, sites: core.context.sites, into: &text)
                    }
                    return text
                }
            }
        }
    }

    // MARK: Clock

    /// Adopts a trusted reference time when this device's clock proved wrong (a hub refused our
    /// changes as clock skew), and gives every local write stamped beyond the reference a fresh
    /// version on the corrected clock. Those writes never left this replica (they were refused),
    /// so nothing else holds their old versions; their values are kept, so nothing is lost.
    /// Returns how many rows were re-stamped.
    @discardableResult
    public func rebaseClock(referenceMilliseconds: UInt64) throws -> Int {
        try core.withLockedValue { core in
            clock.adoptReference(milliseconds: referenceMilliseconds)
            let ceiling = HLCTimestamp(milliseconds: referenceMilliseconds &+ clock.maxForwardDriftMilliseconds, counter: .max).rawValue
            return try core.transaction { context in
                try ReplicaStore.setValue(core.database, key: "clock_offset_ms", .integer(clock.offsetMilliseconds))
                var count = 0
                for table in core.tables {
                    count += try table.restamp(localSite: context.localSite, above: ceiling, in: context)
                }
                return count
            }
        }
    }
}

/// The state behind a replica's mutex: its connection, its tables and its write context.
final class ReplicaCore {
    let database: Database
    let context: WriteContext
    let tables: [any ReplicatedTable]
    let tablesByName: [TableName: any ReplicatedTable]

    /// SQLite's `data_version` as this connection last saw it: it changes when another
    /// connection (another process) commits to the file.
    private var dataVersion: Int64

    init(database: Database, context: WriteContext, tables: [any ReplicatedTable]) throws {
        self.database = database
        self.context = context
        self.tables = tables
        self.tablesByName = Dictionary(uniqueKeysWithValues: tables.map { ($0.schema.name, $0) })
        self.dataVersion = try database.fetchScalar("PRAGMA data_version")?.integerValue ?? 0
    }

    /// Catches up with commits made by other connections to the same file since this one last
    /// looked: the sequence counter, the clock and the site numbers live in memory, and two
    /// processes writing one replica (`storesync sync --live` beside a guide's `lead add`) would
    /// otherwise hand out the same sequence numbers and clock readings. Cheap when nobody else
    /// wrote: one pragma. Inside a write transaction the file is locked, so what it reads holds
    /// until the commit.
    func refreshIfOthersWrote() throws {
        let current = try database.cachedStatement("PRAGMA data_version").fetchOne()?.first?.integerValue ?? 0
        guard current != dataVersion else { return }
        dataVersion = current
        let mark = try highWater(of: tables)
        context.raiseSequence(to: mark.sequence)
        context.clock.raise(to: HLCTimestamp(rawValue: mark.hlc))
        try context.sites.reload()
    }

    func table(_ name: TableName) throws(SyncError) -> any ReplicatedTable {
        guard let table = tablesByName[name] else { throw SyncError.unknownTable(name.rawValue) }
        return table
    }

    /// One transaction; on failure the sequence counter and new site numbers roll back with it.
    func transaction<T>(_ body: (WriteContext) throws -> T) throws -> T {
        let sequence = context.sequence
        do {
            let result = try storage {
                try database.transaction(.immediate) {
                    try refreshIfOthersWrote()
                    return try body(context)
                }
            }
            context.sites.transactionCommitted()
            return result
        } catch {
            context.resetSequence(to: sequence)
            context.sites.transactionRolledBack()
            // What a refresh inside the failed transaction learnt was rolled back with it.
            dataVersion = Int64.min
            throw error
        }
    }
}
