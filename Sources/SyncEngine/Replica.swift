import Foundation
import Synchronization
public import SQLite

/// Settings of a replica that are not stored in its file.
public struct ReplicaOptions: Sendable {
    public var wallClock: WallClock = systemWallClock
    /// How far ahead of our wall clock a remote version may be before it is refused as clock skew.
    public var maxForwardDriftMilliseconds: UInt64 = 5 * 60 * 1000
    public var synchronous: Database.Options.Synchronous = .full
    /// How long a write waits for another process's lock before failing as busy (retryable).
    public var busyTimeoutMilliseconds: Int32 = 5_000
    /// Tests only: runs after the open transaction committed, before the replica is usable (where
    /// another process's commit once went unnoticed).
    var afterOpenTransaction: (@Sendable () -> Void)?

    public init() {}
}

/// A local SQLite replica: plain user tables, and the `sync_` metadata that lets its writes
/// merge with every other replica's in any order, any number of times.
///
/// Ownership: the writer connection, its prepared statements and the in-memory counters live in
/// a `ReplicaCore` that a `ConnectionOwner` owns and serialises, so a `Replica` can be shared
/// between threads; every write is one SQLite transaction that also records the change log.
/// Reads (`read`, `forEachRowVersion`) run on a read-only connection of the replica's own,
/// opened on first use, and never wait for the writer.
///
/// One process per file is by agreement (`ReplicaLock`), not enforced here: one-shot commands
/// write beside a live sync, and every write transaction first catches up with what other
/// processes committed (sequence counter, clock, site numbers).
public final class Replica: Sendable {
    public let id: ReplicaID
    /// Identities this file had before a restore from backup or a `reidentify`, oldest first.
    /// Rows written under them are this replica's own local writes (`onlyLocalWrites`).
    public let previousIDs: [ReplicaID]
    public let path: String
    public let clock: HybridLogicalClock
    public let tables: [TableSchema]
    private let core: ConnectionOwner<ReplicaCore>
    private let reader = Mutex<ReplicaReader?>(nil)

    /// Opens the replica at `path`, creating it (and its random identity) if the file is new.
    /// Every table in `schema` is created if missing and must match what the file recorded.
    ///
    /// A file marked as a backup copy (`backup(to:)`) gets a new identity on this first open.
    /// Errors are `SyncError`s: a file that may not be written is `.storage` with category
    /// `.permissionDenied`, never "not a replica".
    public init(path: String, schema: [TableSchema], options: ReplicaOptions = ReplicaOptions()) throws {
        var databaseOptions = Database.Options()
        databaseOptions.synchronous = options.synchronous
        databaseOptions.busyTimeoutMilliseconds = options.busyTimeoutMilliseconds
        let database: Database
        do {
            database = try Database(path: path, options: databaseOptions)
        } catch let error as SQLiteError where error.isPermissionDenied {
            throw SyncError.storage(SQLiteError(
                code: error.code, extendedCode: error.extendedCode,
                message: "cannot open \(path): no permission to read or write it or its directory (\(error.message))",
                systemErrno: error.systemErrno))
        } catch {
            throw SyncError.storage(error as? SQLiteError ?? SQLiteError(code: 1, message: "\(error)"))
        }
        if database.isReadOnly {
            // SQLite opens a write-protected file read-only without complaint; say why now
            // rather than fail at the first write with "attempt to write a readonly database".
            throw SyncError.storage(SQLiteError(
                code: 8 /* SQLITE_READONLY */,
                message: "\(path) may not be written by this user: no write permission (file mode or a read-only file system)"))
        }
        let opened = try storage { try database.transaction { try ReplicaCore.open(database, schema: schema) } }
        options.afterOpenTransaction?()
        self.id = opened.id
        self.previousIDs = opened.previousIDs
        self.path = path
        self.tables = opened.tables.map(\.schema)
        self.clock = HybridLogicalClock(
            wallClock: options.wallClock,
            maxForwardDriftMilliseconds: options.maxForwardDriftMilliseconds,
            last: HLCTimestamp(rawValue: opened.clockHighWater),
            offsetMilliseconds: opened.clockOffset)
        let context = WriteContext(database: database, sites: opened.sites, clock: clock, localSite: opened.localSite,
                                   sequence: opened.sequence)
        self.core = ConnectionOwner(
            ReplicaCore(database: database, context: context, tables: opened.tables,
                        dataVersion: opened.dataVersion, storedClock: opened.clockHighWater),
            closedError: { SyncError.storage(SQLiteError(code: 21 /* SQLITE_MISUSE */, message: "the replica at \(path) was closed")) })
    }

    /// Runs `body` with the core under its lock; throws once the replica was closed.
    private func withCore<T: Sendable>(_ body: (ReplicaCore) throws -> T) throws -> T {
        try core.withState(body)
    }

    /// The highest local sequence number: every change this replica holds is at or below it.
    public var latestSequence: UInt64 {
        core.withStateIfOpen { core in
            // Another process may have written the file (a guide's command beside a live sync).
            try? core.refreshIfOthersWrote()
            return core.context.sequence
        } ?? 0
    }

    // MARK: Local writes

    /// Runs `body` as one SQLite transaction; its writes and their change-log entries commit
    /// together or not at all. An error `body` throws rolls the transaction back and comes out
    /// as itself (a domain error stays the caller's type); SQLite's errors come out as
    /// `SyncError.storage`.
    public func write<T: Sendable>(_ body: (WriteTransaction) throws -> T) throws -> T {
        try withCore { core in
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
        try withCore { core in
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
        try withCore { core in
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
        try withCore { core in
            try storage { try core.refreshIfOthersWrote() }
            return try readChanges(database: core.database, tables: core.tables, sites: core.context.sites, since: sequence,
                            limit: max(1, limit), excluding: peer, onlyLocalWrites: onlyLocalWrites, scope: scope, localID: id,
                            previousIDs: previousIDs, latestSequence: { core.context.sequence })
        }
    }

    // MARK: Cursors

    public func cursor(for peer: ReplicaID) throws -> PeerCursor {
        try withCore { core in try storage { try ReplicaStore.cursor(core.database, peer: peer) } }
    }

    public func cursors() throws -> [PeerCursor] {
        try withCore { core in try storage { try ReplicaStore.allCursors(core.database) } }
    }

    /// Records that `peer` confirmed holding our changes up to `sequence`.
    public func acknowledge(peer: ReplicaID, upTo sequence: UInt64) throws {
        let now = clock.wallMilliseconds()
        try withCore { core in
            try storage { try ReplicaStore.advanceAcknowledged(core.database, peer: peer, to: sequence, now: now) }
        }
    }

    /// Rows changed after `sequence` (for example, after what a peer acknowledged).
    public func changedRowCount(since sequence: UInt64) throws -> Int {
        try withCore { core in
            try storage { try core.tables.reduce(0) { $0 + (try $1.changedRowCount(since: sequence)) } }
        }
    }

    // MARK: Settings

    public func setting(_ key: String) throws -> Value? {
        try withCore { core in try storage { try ReplicaStore.value(core.database, key: key) } }
    }

    public func setSetting(_ key: String, _ value: Value) throws {
        try withCore { core in try storage { try ReplicaStore.setValue(core.database, key: key, value) } }
    }

    // MARK: Reading user tables

    /// Calls `body` with the key and version of every live row of a table (the row's life version
    /// in a last-writer-wins table, its only version in an insert-only one), in no given order:
    /// what an application needs to order rows by version, as every replica does alike.
    /// Runs on the reader connection, like `read`.
    public func forEachRowVersion(in table: TableName, _ body: (String, Version) throws -> Void) throws {
        if let reader = try sharedReader() {
            return try reader.forEachRowVersion(in: table, body)
        }
        try withCore { core in
            try passingDomainErrors {
                try core.database.transaction(.deferred) {
                    try core.table(table).forEachRowVersion(sites: core.context.sites, body)
                }
            }
        }
    }

    /// Runs read-only work (queries for views, reports, tests) in one read transaction on the
    /// replica's reader connection: it sees the last commit, never an open write, and never
    /// waits for the writer. An in-memory replica has one connection: its reads take the
    /// writer's lock. Errors `body` throws come out as themselves.
    public func read<T: Sendable>(_ body: (Database) throws -> T) throws -> T {
        if let reader = try sharedReader() {
            return try reader.read(body)
        }
        return try withCore { core in
            try passingDomainErrors { try core.database.transaction(.deferred) { try body(core.database) } }
        }
    }

    /// The replica's own reader, opened on first use; nil for an in-memory replica.
    private func sharedReader() throws -> ReplicaReader? {
        guard isFileBacked else { return nil }
        return try reader.withLock { slot throws -> ReplicaReader in
            if let open = slot { return open }
            let opened = try makeReader()
            slot = opened
            return opened
        }
    }

    var isFileBacked: Bool { !path.isEmpty && path != ":memory:" && !path.hasPrefix("file::memory:") }

    /// A canonical text of every user table, ordered by table and key, values tagged by type.
    /// Two replicas that converged give byte-identical dumps. With `includeVersions`, the
    /// merge metadata (causal lengths and versions, not local sequences) is dumped too.
    public func canonicalDump(includeVersions: Bool = false) throws -> String {
        try withCore { core in
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

    // MARK: Closing

    /// Merges the write-ahead log into the main file and truncates it (`wal_checkpoint(TRUNCATE)`),
    /// so the main file alone holds every committed transaction. Returns false when a reader of
    /// another connection kept the checkpoint from completing (it is then partial; nothing is lost).
    @discardableResult
    public func checkpoint() throws -> Bool {
        try withCore { core in try storage { try core.database.checkpoint(.truncate).complete } }
    }

    /// A clean stop: closes the replica's reader, checkpoints the WAL into the main file (a cold
    /// copy of the main file alone then holds every committed row) and closes the writer
    /// connection. Every later call on this replica throws; closing twice does nothing.
    /// Returns whether the checkpoint completed (false when another process was reading).
    @discardableResult
    public func close() throws -> Bool {
        reader.withLock { $0 = nil }
        // Dropping the core finalizes its statements and closes the connection.
        return try core.close { core in try storage { try core.database.checkpoint(.truncate).complete } } ?? true
    }

    // MARK: Clock

    /// Adopts a trusted reference time when this device's clock proved wrong (a hub refused our
    /// changes as clock skew), and gives every local write stamped beyond the reference a fresh
    /// version on the corrected clock. Those writes never left this replica (they were refused),
    /// so nothing else holds their old versions; their values are kept, so nothing is lost.
    /// Returns how many rows were re-stamped.
    @discardableResult
    public func rebaseClock(referenceMilliseconds: UInt64) throws -> Int {
        try withCore { core in
            clock.adoptReference(milliseconds: referenceMilliseconds)
            let ceiling = HLCTimestamp(milliseconds: referenceMilliseconds &+ clock.maxForwardDriftMilliseconds, counter: .max).rawValue
            return try core.transaction { context in
                try ReplicaStore.setValue(core.database, key: ReplicaStore.Key.clockOffset, .integer(clock.offsetMilliseconds))
                var count = 0
                for table in core.tables {
                    count += try table.restamp(localSite: context.localSite, above: ceiling, in: context)
                }
                // The file's high-water drops with the re-stamped versions; the clock resumes at
                // what remains (versions peers wrote, within their drift bound), never below it.
                try core.resetClockHighWater(to: try clockHighWater(of: core.tables))
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
    /// Statements that code running inside this replica's transactions (central rules) prepared
    /// on its connection, by the caller's name: they belong to the replica that owns the
    /// connection and are finalized with it, never kept by the caller across replicas.
    var namedStatements: [String: Statement] = [:]
    /// The clock high-water as the file records it (`sync_state` `clock_high_water`).
    private var storedClock: UInt64

    init(database: Database, context: WriteContext, tables: [any ReplicatedTable], dataVersion: Int64, storedClock: UInt64) {
        self.database = database
        self.context = context
        self.tables = tables
        self.tablesByName = Dictionary(uniqueKeysWithValues: tables.map { ($0.schema.name, $0) })
        self.dataVersion = dataVersion
        self.storedClock = storedClock
    }

    /// What the open transaction read and wrote.
    struct Opened {
        var id: ReplicaID
        var previousIDs: [ReplicaID]
        var tables: [any ReplicatedTable]
        var sites: SiteTable
        var localSite: UInt32
        var sequence: UInt64
        var clockHighWater: UInt64
        var clockOffset: Int64
        var dataVersion: Int64
    }

    /// Creates or opens the replica's storage inside the caller's write transaction: identity
    /// (a new one for a marked backup copy), migration of an older file, the tables, and the
    /// high-water marks, all read with `data_version` in one transaction. Read outside it, a
    /// commit by another process in between went unnoticed and its sequence numbers were
    /// handed out again.
    static func open(_ database: Database, schema: [TableSchema]) throws -> Opened {
        try database.execute(ReplicaStore.schema)
        try database.execute(SiteTable.schema)
        let format: Int64
        var id: ReplicaID
        if let stored = try ReplicaStore.replicaID(database) {
            id = stored
            format = try ReplicaStore.value(database, key: ReplicaStore.Key.format)?.integerValue ?? 1
        } else {
            id = ReplicaID.random()
            format = ReplicaMigration.currentFormat
            try ReplicaStore.setValue(database, key: ReplicaStore.Key.replicaID, .blob(id.bytes))
            try ReplicaStore.setValue(database, key: ReplicaStore.Key.format, .integer(format))
            try ReplicaStore.setValue(database, key: ReplicaStore.Key.clockHighWater, .integer(0))
        }
        if try ReplicaStore.value(database, key: ReplicaStore.Key.restoredFrom) != nil {
            id = try ReplicaStore.renewIdentity(database).new
        }
        var tables: [any ReplicatedTable] = []
        for table in schema.sorted(by: { $0.name < $1.name }) {
            try ReplicaStore.register(database, schema: table)
            tables.append(try makeTable(table, database: database))
        }
        if format != ReplicaMigration.currentFormat {
            try ReplicaMigration.migrate(database, tables: tables, from: format)
            try ReplicaStore.setValue(database, key: ReplicaStore.Key.format, .integer(ReplicaMigration.currentFormat))
        }
        for table in tables { try table.createStorage() }
        let sites = try SiteTable(database: database)
        let localSite = try sites.number(for: id)
        sites.transactionCommitted()
        let clock: UInt64
        if let stored = try ReplicaStore.value(database, key: ReplicaStore.Key.clockHighWater)?.integerValue {
            clock = UInt64(bitPattern: stored)
        } else {
            // Written by a build that migrated to format 2 without it: compute it once.
            clock = try clockHighWater(of: tables)
            try ReplicaStore.setValue(database, key: ReplicaStore.Key.clockHighWater, .integer(Int64(bitPattern: clock)))
        }
        return Opened(
            id: id, previousIDs: try ReplicaStore.previousIDs(database), tables: tables, sites: sites, localSite: localSite,
            sequence: try sequenceHighWater(of: tables), clockHighWater: clock,
            clockOffset: try ReplicaStore.value(database, key: ReplicaStore.Key.clockOffset)?.integerValue ?? 0,
            dataVersion: try dataVersion(database))
    }

    private static func dataVersion(_ database: Database) throws -> Int64 {
        try database.cachedStatement("PRAGMA data_version").fetchOne()?.first?.integerValue ?? 0
    }

    /// Catches up with commits made by other connections to the same file since this one last
    /// looked: the sequence counter, the clock and the site numbers live in memory, and two
    /// processes writing one replica (`storesync sync --live` beside a guide's `lead add`) would
    /// otherwise hand out the same sequence numbers and clock readings. Cheap when nobody else
    /// wrote: one pragma. Inside a write transaction the file is locked, so what it reads holds
    /// until the commit; every write transaction calls it first.
    func refreshIfOthersWrote() throws {
        let current = try Self.dataVersion(database)
        guard current != dataVersion else { return }
        dataVersion = current
        context.raiseSequence(to: try sequenceHighWater(of: tables))
        storedClock = UInt64(bitPattern: try ReplicaStore.value(database, key: ReplicaStore.Key.clockHighWater)?.integerValue ?? 0)
        context.clock.raise(to: HLCTimestamp(rawValue: storedClock))
        try context.sites.reload()
    }

    /// Records the clock's reading in the file when it moved past the recorded high-water, in
    /// the transaction that wrote the versions: every version in the file is then at or below
    /// it, and a reopened replica (or another process) resumes the clock there.
    private func persistClockHighWater() throws {
        let last = context.clock.last.rawValue
        guard last > storedClock else { return }
        try ReplicaStore.setValue(database, key: ReplicaStore.Key.clockHighWater, .integer(Int64(bitPattern: last)))
        storedClock = last
    }

    /// Sets the recorded high-water to `value` (after a clock rebase re-stamped versions) and
    /// raises the clock to it.
    func resetClockHighWater(to value: UInt64) throws {
        try ReplicaStore.setValue(database, key: ReplicaStore.Key.clockHighWater, .integer(Int64(bitPattern: value)))
        storedClock = value
        context.clock.raise(to: HLCTimestamp(rawValue: value))
    }

    func table(_ name: TableName) throws(SyncError) -> any ReplicatedTable {
        guard let table = tablesByName[name] else { throw SyncError.unknownTable(name.rawValue) }
        return table
    }

    /// One transaction; on failure the sequence counter and new site numbers roll back with it.
    /// SQLite's errors come out as `SyncError.storage`; any other error `body` throws, as itself.
    func transaction<T>(_ body: (WriteContext) throws -> T) throws -> T {
        let sequence = context.sequence
        let clock = storedClock
        do {
            let result = try passingDomainErrors {
                try database.transaction(.immediate) {
                    try refreshIfOthersWrote()
                    let result = try body(context)
                    try persistClockHighWater()
                    return result
                }
            }
            context.sites.transactionCommitted()
            return result
        } catch {
            context.resetSequence(to: sequence)
            storedClock = clock
            context.sites.transactionRolledBack()
            // What a refresh inside the failed transaction learnt was rolled back with it.
            dataVersion = Int64.min
            throw error
        }
    }
}
