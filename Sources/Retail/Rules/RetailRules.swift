import LockBox
public import SyncEngine
import SQLite

/// The central rules of the retail deployment, run by a hub inside its merge transaction after
/// each batch (the hub calls them through its `CentralRules` hook; the CLI wires them in):
///
/// - the funnel rule (`FunnelRule`): stages never skip or move back; corrections flow back to
///   the terminals; concurrent won and lost are flagged;
/// - the duplicate-lead rule (`DuplicateLeadRule`): leads of a store with the same normalised
///   phone point to the earliest one;
/// - the stock-threshold promotion rule (`StockPromotionRule`): a store whose stock of a SKU falls
///   below its safety threshold has suggestions sent to the nearest stores that have it.
///
/// Everything they write is derived: keys, values and versions come from the replicated data
/// they judge, never from the hub's clock, replica id or the order batches arrived in, so two
/// hubs (a regional hub and HQ, or a hub and its restarted self) that judge the same history
/// write the same rows, and a re-sent batch changes nothing (a promotion is judged with the
/// signals the hub holds at the time: `StockPromotionRule` says exactly what is guaranteed).
/// They work only on what the batch carries: the rows of its leads and inventory signals, with
/// indexed queries and cached statements.
///
/// They keep two tables of their own in the hub's file, not replicated and rebuilt from the
/// replicated data when missing: `rules_stock_events` (each (store, SKU)'s signals in version
/// order with the stock fold after each) and `rules_funnel_writes` (every stage write seen).
public struct RetailRules: Sendable {
    /// What one batch made the rules write.
    public struct Outcome: Sendable, Hashable {
        public var stageCompensations = 0
        public var duplicateLinks = 0
        public var promotions = 0
        public var reviews = 0

        public init() {}

        public var isEmpty: Bool { stageCompensations == 0 && duplicateLinks == 0 && promotions == 0 && reviews == 0 }
    }

    private let funnel = FunnelRule()
    private let duplicates = DuplicateLeadRule()
    private let stock = StockPromotionRule()
    /// Whether the rules' state was checked against the replica's data (once per instance).
    private let installed = LockBox(false)

    /// Rules that prepare their tables in the first merge they judge (see `install(on:)`).
    public init() {}

    /// Prepares a hub's replica for the rules now rather than in the first merge: their tables,
    /// and their state rebuilt from the replicated data if it does not cover it (signals the hub
    /// holds but never judged, say after it ran without rules). Rebuilding issues nothing for
    /// the past. Returns rules ready for that replica.
    public static func install(on replica: Replica) throws -> RetailRules {
        try replica.write { tx in try RuleTables.install(in: tx) }
        let rules = RetailRules()
        rules.installed.withLockedValue { $0 = true }
        return rules
    }

    /// The `CentralRules` hook's shape: judges one merged batch inside its transaction.
    public func afterMerge(_ changeset: Changeset, result: ApplyResult, transaction: WriteTransaction) throws {
        try judge(changeset, result: result, transaction: transaction)
    }

    /// Judges one merged batch; everything written commits with it. Returns what it wrote.
    @discardableResult
    public func judge(_ changeset: Changeset, result: ApplyResult, transaction tx: WriteTransaction) throws -> Outcome {
        if installed.withLockedValue({ $0 }) {
            // Cheap, and the tables are there even if the merge that first made them rolled back.
            try tx.database.execute(RuleTables.schema)
        } else {
            try RuleTables.install(in: tx)
            installed.withLockedValue { $0 = true }
        }
        let context = RuleContext(tx: tx, statements: StatementCache(tx))
        var outcome = Outcome()
        for changes in changeset.tables {
            switch changes.table {
            case RetailSchema.leads.name:
                try judgeLeads(changes, result: result, context, into: &outcome)
            case RetailSchema.inventorySignals.name:
                outcome.promotions += try stock.apply(Self.signals(in: changes), in: context)
            default:
                continue
            }
        }
        return outcome
    }

    private static let storeColumn = RetailSchema.leads.columnIndex(of: Column.store)
    private static let phoneColumn = RetailSchema.leads.columnIndex(of: Column.phoneNormalized)

    /// The funnel and duplicate rules over a batch's lead rows, one row at a time. What the
    /// merge did to each row is read off `result.changedRows`, which lists the changed rows in
    /// the order the batch carries them, so the two walk in step (no lookups, no hashing).
    private func judgeLeads(_ changes: TableChanges, result: ApplyResult, _ tx: RuleContext, into outcome: inout Outcome) throws {
        let columns = FunnelRule.Columns(changes)
        let store = changes.index(of: Column.store)
        let phone = changes.index(of: Column.phoneNormalized)
        let canonical = changes.index(of: Column.canonicalID)
        let changed = result.changedRows
        var next = 0
        for row in changes.rows {
            while next < changed.count && changed[next].table != RetailSchema.leads.name { next += 1 }
            var rowOutcome = RowOutcome.unchanged
            if next < changed.count && changed[next].primaryKey == row.primaryKey {
                rowOutcome = changed[next].outcome
                next += 1
            }
            if try funnel.record(row, columns, inserted: rowOutcome == .inserted, in: tx) {
                let (compensated, reviews) = try funnel.evaluate(lead: row.primaryKey, in: tx)
                if compensated { outcome.stageCompensations += 1 }
                outcome.reviews += reviews
            }
            var links = 0
            var reviews = 0
            switch rowOutcome {
            case .inserted:
                let linked = row.cell(canonical).map { !$0.value.isNull } ?? false
                (links, reviews) = try duplicates.inserted(DuplicateLeadRule.key(of: row, store: store, phone: phone), linked: linked, in: tx)
            case .updated(let changedColumns) where changedColumns.contains(where: { $0 == Self.storeColumn || $0 == Self.phoneColumn }):
                (links, reviews) = try duplicates.moved(row.primaryKey, in: tx)
            default:
                break
            }
            outcome.duplicateLinks += links
            outcome.reviews += reviews
        }
    }

    /// The batch's inventory signals that are stock events (well-formed rows).
    private static func signals(in changes: TableChanges) -> [ArrivedSignal] {
        let store = changes.index(of: Column.store)
        let sku = changes.index(of: Column.sku)
        let kind = changes.index(of: Column.kind)
        let quantity = changes.index(of: Column.quantity)
        return changes.rows.compactMap { row in
            guard row.causalLength == 1,
                  case .text(let storeID)? = row.cell(store)?.value, case .text(let skuID)? = row.cell(sku)?.value,
                  case .text(let kindName)? = row.cell(kind)?.value, let signalKind = SignalKind(rawValue: kindName),
                  case .integer(let amount)? = row.cell(quantity)?.value else { return nil }
            return ArrivedSignal(store: storeID, sku: skuID,
                                 event: StockEvent(signal: row.primaryKey, version: row.lifeVersion, kind: signalKind, quantity: amount))
        }
    }
}

/// The rules' own tables in a hub's file (not replicated) and their rebuild.
enum RuleTables {
    static let schema = """
        CREATE TABLE IF NOT EXISTS rules_stock_events (
            store TEXT NOT NULL, sku TEXT NOT NULL, hlc INTEGER NOT NULL, origin BLOB NOT NULL,
            signal TEXT NOT NULL, is_count INTEGER NOT NULL, quantity INTEGER NOT NULL,
            stock INTEGER, armed INTEGER, crossings INTEGER, threshold INTEGER,
            PRIMARY KEY (store, sku, hlc, origin)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS rules_funnel_writes (
            lead TEXT NOT NULL, hlc INTEGER NOT NULL, origin BLOB NOT NULL,
            stage TEXT, previous_stage TEXT, previous_known INTEGER NOT NULL, trusted INTEGER NOT NULL,
            PRIMARY KEY (lead, hlc, origin)
        ) WITHOUT ROWID;
        """

    private static let signalCountSQL = "SELECT count(*) FROM inventory_signals"
    private static let mirroredCountSQL = "SELECT count(*) FROM rules_stock_events"
    private static let allSignalsSQL = "SELECT id, store, sku, kind, quantity FROM inventory_signals"
    private static let unrecordedLeadsSQL = """
        SELECT id, stage FROM leads WHERE NOT EXISTS (SELECT 1 FROM rules_funnel_writes AS w WHERE w.lead = leads.id)
        """
    private static let seedSQL = """
        INSERT INTO rules_funnel_writes (lead, hlc, origin, stage, previous_stage, previous_known, trusted)
        VALUES (?1, ?2, ?3, ?4, NULL, 0, 1) ON CONFLICT DO NOTHING
        """

    static func install(in tx: WriteTransaction) throws {
        let database = tx.database
        try database.execute(schema)
        try LeadViews.install(in: database)
        let signals = try database.fetchScalar(signalCountSQL)?.integerValue ?? 0
        let mirrored = try database.fetchScalar(mirroredCountSQL)?.integerValue ?? 0
        if signals != mirrored { try rebuildStock(in: tx) }
        // Leads the rules never saw a stage write of: their current stage is taken as reached.
        for row in try database.fetchAll(unrecordedLeadsSQL) {
            guard let lead = row[0].textValue,
                  let version = try tx.version(of: RetailSchema.leads.name, primaryKey: lead, column: Column.stage) else { continue }
            try database.run(seedSQL, [.text(lead), .integer(Int64(bitPattern: version.hlc.rawValue)), .blob(version.origin.bytes), row[1]])
        }
    }

    /// Re-folds every pair from the signals the replica holds, issuing nothing.
    private static func rebuildStock(in tx: WriteTransaction) throws {
        let database = tx.database
        try database.execute("DELETE FROM rules_stock_events")
        var signals: [String: (store: String, sku: String, kind: SignalKind, quantity: Int64)] = [:]
        for row in try database.fetchAll(allSignalsSQL) {
            guard let id = row[0].textValue, let store = row[1].textValue, let sku = row[2].textValue,
                  let kind = row[3].textValue.flatMap(SignalKind.init(rawValue:)), let quantity = row[4].integerValue else { continue }
            signals[id] = (store, sku, kind, quantity)
        }
        var pairs: [StockPromotionRule.PairKey: [StockEvent]] = [:]
        try tx.forEachRowVersion(in: RetailSchema.inventorySignals.name) { key, version in
            guard let signal = signals[key] else { return }
            pairs[StockPromotionRule.PairKey(store: signal.store, sku: signal.sku), default: []]
                .append(StockEvent(signal: key, version: version, kind: signal.kind, quantity: signal.quantity))
        }
        let rule = StockPromotionRule()
        let context = RuleContext(tx: tx, statements: StatementCache(tx))
        for key in pairs.keys.sorted() {
            let threshold = try database.fetchScalar("SELECT min_quantity FROM thresholds WHERE id = ?", [.text("\(key.store)/\(key.sku)")])?.integerValue
            _ = try rule.fold((pairs[key] ?? []).sorted(by: StockEvent.inOrder), into: key, threshold: threshold, context)
        }
    }
}
