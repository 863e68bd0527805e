import Foundation
import SQLite
import SyncEngine

/// One inventory signal a batch brought to the hub.
struct ArrivedSignal {
    var store: String
    var sku: String
    var event: StockEvent
}

/// The stock-threshold promotion rule.
///
/// **Semantics.** For each (store, SKU) the hub keeps the signals it holds in version order
/// (`rules_stock_events`, with the fold's state after each one) and folds them with the pair's
/// current threshold (`StockFold`): a *crossing* is an event that leaves stock below the
/// threshold while the pair is armed (stock was at or above it since the last crossing; a pair
/// starts disarmed, so stock must be seen at or above the threshold before it can fall). The
/// crossing is identified by its signal and numbered by how many crossings precede it in
/// version order, so the number is a property of the history, never a per-hub counter. A
/// crossing whose signal's version is after the threshold's own version (`min_quantity`'s cell)
/// issues suggestions: a threshold applies from when it was set, so setting or changing one
/// never re-issues history.
///
/// **Targets.** The 5 nearest other stores *of the same region* (a regional hub knows only its
/// region; the same set on HQ makes both hubs issue the same rows), by great-circle distance in
/// whole metres (ties by store id), that had the SKU in stock (> 0) as of the crossing's version
/// (their own signals up to it), so signals stamped later never change the choice.
///
/// **Rows.** One `promotions` row per target, keyed by a hash of every column, written as a
/// derived insert at version (the crossing signal's clock, the promotions origin), with
/// `issued_ms` from that clock: a hub that re-derives a crossing from the same history (a
/// resync, a restart, a second hub) writes the same rows, which merge into one.
///
/// **Judging.** A batch's signals are first folded into the histories of all its pairs; only
/// then are the crossings the folds found (new ones, and ones a late signal re-folded) judged,
/// with what the hub holds after the batch: where a signal stands in its batch never matters.
/// `crossing` and `stock_at_crossing` are the crossing's ordinal and stock in the history as it
/// stands then. A crossing that has suggestions (from this hub or another) gets no new ones,
/// and rows are never updated or withdrawn; a crossing that found no target is judged again
/// whenever a re-fold passes over it.
///
/// **What is guaranteed.** A crossing's suggestions depend only on what the judging hub holds:
/// the source pair's signals up to the crossing (whether it is one, its ordinal and stock), the
/// candidates' signals of the SKU up to the crossing, the pair's threshold and the region's
/// stores. So:
/// - two hubs that, each when it judges a crossing, hold the same signals of the region's stores
///   for that SKU with versions up to the crossing (and the same threshold and stores rows) issue
///   identical rows for it (keys, values, versions), however their batches were ordered, grouped
///   and cut. Every hub to which each signal arrives no later than any signal of the same SKU
///   and region with a later version is such a hub;
/// - HQ fed a regional hub's log in batches of any size holds, for every crossing the regional
///   hub issued suggestions for, exactly the regional hub's rows, even when terminals delivered
///   late (one exception below): those rows follow the batch that made the crossing in the
///   regional hub's log, so an HQ batch that reaches the crossing either carries them (HQ issues
///   nothing) or ends before them, on a prefix that holds the same signals of the other stores
///   (a terminal's batch carries one store's signals).
///
/// **What is not.** What a hub does not hold when it judges cannot count:
/// - a signal with a version before a crossing that reaches the hub in a later batch (a terminal
///   that was offline) does not count for it; a hub that held it may choose other targets or
///   number the crossing differently, and both hubs' rows survive the exchange;
/// - a late signal of the source store renumbers the crossings after it (two crossings of a pair
///   can then share an ordinal) and changes the stock after them, but issued rows keep the values
///   they were judged with: a crossing's identity is `crossing_signal`;
/// - the exception above: an HQ batch that ends inside the regional hub's merge of a batch that
///   brought the source store's own late signals judges a crossing on part of that history, and
///   its rows can differ from the regional hub's (a relay that cut only at the regional hub's
///   commit boundaries would close this);
/// - a crossing that found no target leaves no row, so nothing tells another hub it was judged:
///   HQ, judging it on a longer prefix of the regional hub's log, or a hub re-judging it after a
///   re-fold, may find targets the first judgement did not;
/// - thresholds and store positions are read as the hub holds them when it judges.
struct StockPromotionRule {
    static let targetCount = 5
    static let earthRadiusMeters = 6_371_008.8

    private static let lastSQL = """
        SELECT hlc, origin, stock, armed, crossings, threshold FROM rules_stock_events
        WHERE store = ?1 AND sku = ?2 ORDER BY hlc DESC, origin DESC LIMIT 1
        """
    private static let beforeSQL = """
        SELECT hlc, origin, stock, armed, crossings, threshold FROM rules_stock_events
        WHERE store = ?1 AND sku = ?2 AND (hlc, origin) < (?3, ?4) ORDER BY hlc DESC, origin DESC LIMIT 1
        """
    private static let fromSQL = """
        SELECT hlc, origin, signal, is_count, quantity, stock, armed, crossings, threshold FROM rules_stock_events
        WHERE store = ?1 AND sku = ?2 AND (hlc, origin) >= (?3, ?4) ORDER BY hlc, origin
        """
    private static let insertSQL = """
        INSERT INTO rules_stock_events (store, sku, hlc, origin, signal, is_count, quantity, stock, armed, crossings, threshold)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING
        """
    private static let snapshotSQL = """
        UPDATE rules_stock_events SET stock = ?5, armed = ?6, crossings = ?7, threshold = ?8
        WHERE store = ?1 AND sku = ?2 AND hlc = ?3 AND origin = ?4
        """
    private static let stockAsOfSQL = """
        SELECT stock FROM rules_stock_events
        WHERE store = ?1 AND sku = ?2 AND (hlc, origin) <= (?3, ?4) ORDER BY hlc DESC, origin DESC LIMIT 1
        """
    private static let thresholdSQL = "SELECT min_quantity FROM thresholds WHERE id = ?"
    private static let issuedSQL = "SELECT 1 FROM promotions WHERE source_store = ?1 AND sku = ?2 AND crossing_signal = ?3 LIMIT 1"
    private static let storeSQL = "SELECT region, latitude, longitude FROM stores WHERE id = ?"
    private static let neighboursSQL = """
        SELECT id, latitude, longitude FROM stores
        WHERE region IS ?1 AND id != ?2 AND latitude IS NOT NULL AND longitude IS NOT NULL
        """

    /// A crossing found by a fold.
    struct Crossing {
        var signal: String
        var version: Version
        var ordinal: Int64
        var stock: Int64
    }

    /// Folds the batch's new signals into their pairs' histories, then judges the crossings the
    /// folds found; returns how many suggestions it issued.
    ///
    /// Two passes: every pair of the batch is folded before any crossing is judged, so a
    /// candidate's stock as of a crossing counts every signal the batch brought, whichever pair
    /// it belongs to (judging pair by pair missed the candidates folded after the source, and
    /// two hubs that got the same signals in differently cut batches chose different targets).
    func apply(_ arrived: [ArrivedSignal], in tx: RuleContext) throws -> Int {
        var pairs: [PairKey: [StockEvent]] = [:]
        for signal in arrived { pairs[PairKey(store: signal.store, sku: signal.sku), default: []].append(signal.event) }
        var found: [(key: PairKey, threshold: Int64, crossings: [Crossing])] = []
        let thresholdOf = try tx.statement("threshold", Self.thresholdSQL)
        for (key, arrivals) in pairs {
            let events = arrivals.count == 1 ? arrivals : arrivals.sorted(by: StockEvent.inOrder)
            try thresholdOf.bind(key.thresholdID, at: 1)
            let minimum: Int64? = try thresholdOf.step() ? thresholdOf.value(at: 0).integerValue : nil
            thresholdOf.reset()
            let crossings = try fold(events, into: key, threshold: minimum, tx)
            if let minimum, !crossings.isEmpty { found.append((key, minimum, crossings)) }
        }
        // Judged in pair order: what is issued does not depend on it (judging reads only the
        // folded histories), but the rows then enter the log in the same order on every hub.
        if found.count > 1 { found.sort { $0.key < $1.key } }
        var issued = 0
        for (key, minimum, crossings) in found {
            guard let setAt = try tx.version(of: RetailSchema.thresholds.name, primaryKey: key.thresholdID, column: Column.minQuantity) else {
                continue
            }
            for crossing in crossings where crossing.version > setAt {
                issued += try issue(crossing, of: key, threshold: minimum, tx)
            }
        }
        return issued
    }

    struct PairKey: Hashable, Comparable {
        var store: String
        var sku: String
        /// The key of the pair's `thresholds` row.
        var thresholdID: String { "\(store)/\(sku)" }
        static func < (lhs: PairKey, rhs: PairKey) -> Bool { (lhs.store, lhs.sku) < (rhs.store, rhs.sku) }
    }

    /// The stored state after one event.
    private struct Snapshot: Equatable {
        var fold: StockFold
        var threshold: Int64?
    }

    private static func snapshot(_ statement: Statement, from column: Int32) -> Snapshot? {
        guard !statement.value(at: column).isNull else { return nil }
        let threshold = statement.value(at: column + 3).integerValue
        return Snapshot(fold: StockFold(stock: statement.int64(at: column), armed: statement.int64(at: column + 1) != 0,
                                        crossings: statement.int64(at: column + 2)), threshold: threshold)
    }

    private static func bind(_ version: Version, _ statement: Statement, at index: Int32) throws {
        try statement.bind(Int64(bitPattern: version.hlc.rawValue), at: index)
        try statement.bind(version.origin.bytes, at: index + 1)
    }

    private static func version(_ statement: Statement, at index: Int32) throws -> Version {
        let hlc = statement.int64(at: index)
        return try statement.withBlob(at: index + 1) { bytes throws(SyncError) in
            try Version.stored(hlc: hlc, origin: bytes, table: "rules_stock_events")
        }
    }

    /// Adds `events` (sorted, new or re-delivered) to the pair's history and returns the crossings
    /// the fold found among the events it (re)visited.
    func fold(_ events: [StockEvent], into key: PairKey, threshold: Int64?, _ tx: RuleContext) throws -> [Crossing] {
        guard let first = events.first, let lastEvent = events.last else { return [] }
        let database = tx.database
        let last = try tx.statement("stock.last", Self.lastSQL)
        try last.bind([.text(key.store), .text(key.sku)])
        let tail: (version: Version, snapshot: Snapshot?)? = try last.step()
            ? (try Self.version(last, at: 0), Self.snapshot(last, from: 2)) : nil
        last.reset()
        let insert = try tx.statement("stock.insert", Self.insertSQL)
        var crossings: [Crossing] = []

        if tail == nil || (tail.map { $0.version < first.version && $0.snapshot?.threshold == threshold } ?? false) {
            // Appending in order (the common case): fold on from the last state, one insert each.
            var fold = tail?.snapshot?.fold ?? StockFold()
            var previous: Version?
            // The pair's parameters are bound once: a reset keeps the bindings.
            try insert.bind([.text(key.store), .text(key.sku)])
            for event in events where event.version != previous {
                previous = event.version
                let crossed = fold.apply(event.kind, event.quantity, threshold: threshold)
                try Self.bind(event.version, insert, at: 3)
                try insert.bind(event.signal, at: 5)
                try insert.bind(Int64(event.kind == .stocktake ? 1 : 0), at: 6)
                try insert.bind(event.quantity, at: 7)
                try Self.bindSnapshot(Snapshot(fold: fold, threshold: threshold), insert, at: 8)
                try insert.step()
                insert.reset()
                if crossed {
                    crossings.append(Crossing(signal: event.signal, version: event.version, ordinal: fold.crossings, stock: fold.stock))
                }
            }
            return crossings
        }

        // Out of order, or the threshold changed: add the new events, then re-fold from the
        // earliest of them (from the start when the threshold changed).
        var earliest: Version?
        try insert.bind([.text(key.store), .text(key.sku)])
        for event in events {
            try Self.bind(event.version, insert, at: 3)
            try insert.bind(event.signal, at: 5)
            try insert.bind(Int64(event.kind == .stocktake ? 1 : 0), at: 6)
            try insert.bind(event.quantity, at: 7)
            for index in Int32(8)...11 { try insert.bindNull(at: index) }
            try insert.step()
            insert.reset()
            if database.changes > 0, earliest == nil { earliest = event.version }
        }
        let thresholdChanged = tail?.snapshot?.threshold != threshold
        guard let earliest else {
            // Nothing new: a re-delivery. A changed threshold still re-folds (lazily, here).
            if thresholdChanged { return try refold(key, from: nil, lastNew: lastEvent.version, threshold: threshold, tx) }
            return []
        }
        return try refold(key, from: thresholdChanged ? nil : earliest, lastNew: lastEvent.version, threshold: threshold, tx)
    }

    private static func bindSnapshot(_ snapshot: Snapshot, _ statement: Statement, at index: Int32) throws {
        try statement.bind(snapshot.fold.stock, at: index)
        try statement.bind(Int64(snapshot.fold.armed ? 1 : 0), at: index + 1)
        try statement.bind(snapshot.fold.crossings, at: index + 2)
        try statement.bind(snapshot.threshold.map(SQLValue.integer) ?? .null, at: index + 3)
    }

    /// Re-folds the pair from `start` (nil: from its first event) to the end, or until a state
    /// after the last new event equals the stored one (everything after it is then unchanged).
    private func refold(_ key: PairKey, from start: Version?, lastNew: Version, threshold: Int64?, _ tx: RuleContext) throws -> [Crossing] {
        var fold = StockFold()
        if let start {
            let before = try tx.statement("stock.before", Self.beforeSQL)
            try before.bind([.text(key.store), .text(key.sku)])
            try Self.bind(start, before, at: 3)
            if try before.step(), let snapshot = Self.snapshot(before, from: 2) { fold = snapshot.fold }
            before.reset()
        }
        struct Stored {
            var version: Version
            var signal: String
            var kind: SignalKind
            var quantity: Int64
            var snapshot: Snapshot?
        }
        var rows: [Stored] = []
        let scan = try tx.statement("stock.from", Self.fromSQL)
        try scan.bind([.text(key.store), .text(key.sku)])
        try Self.bind(start ?? Version(hlc: .zero, origin: .none), scan, at: 3)
        while try scan.step() {
            rows.append(Stored(version: try Self.version(scan, at: 0), signal: scan.text(at: 2) ?? "",
                               kind: scan.int64(at: 3) != 0 ? .stocktake : .adjustment, quantity: scan.int64(at: 4),
                               snapshot: Self.snapshot(scan, from: 5)))
        }
        scan.reset()
        let update = try tx.statement("stock.snapshot", Self.snapshotSQL)
        var crossings: [Crossing] = []
        for row in rows {
            let crossed = fold.apply(row.kind, row.quantity, threshold: threshold)
            let snapshot = Snapshot(fold: fold, threshold: threshold)
            if snapshot == row.snapshot && row.version > lastNew { break }
            if crossed {
                crossings.append(Crossing(signal: row.signal, version: row.version, ordinal: fold.crossings, stock: fold.stock))
            }
            if snapshot != row.snapshot {
                try update.bind([.text(key.store), .text(key.sku)])
                try Self.bind(row.version, update, at: 3)
                try Self.bindSnapshot(snapshot, update, at: 5)
                try update.step()
                update.reset()
            }
        }
        return crossings
    }

    // MARK: Issuing suggestions

    private func issue(_ crossing: Crossing, of key: PairKey, threshold: Int64, _ tx: RuleContext) throws -> Int {
        guard try tx.scalar("issued", Self.issuedSQL, [.text(key.store), .text(key.sku), .text(crossing.signal)]) == nil,
              let source = try tx.rows("store", Self.storeSQL, [.text(key.store)]).first,
              let latitude = source[1].realValue, let longitude = source[2].realValue else {
            return 0
        }
        var candidates: [(store: String, meters: Int64)] = []
        for row in try tx.rows("neighbours", Self.neighboursSQL, [source[0], .text(key.store)]) {
            guard let store = row[0].textValue, let lat = row[1].realValue, let lon = row[2].realValue else { continue }
            candidates.append((store, Self.meters(from: (latitude, longitude), to: (lat, lon))))
        }
        candidates.sort { $0.meters != $1.meters ? $0.meters < $1.meters : $0.store < $1.store }
        let stockAsOf = try tx.statement("stock.stockAsOf", Self.stockAsOfSQL)
        var issued = 0
        for candidate in candidates where issued < Self.targetCount {
            try stockAsOf.bind([.text(candidate.store), .text(key.sku)])
            try Self.bind(crossing.version, stockAsOf, at: 3)
            let inStock = try stockAsOf.step() && stockAsOf.int64(at: 0) > 0
            stockAsOf.reset()
            guard inStock else { continue }
            let issuedMs = Int64(crossing.version.hlc.milliseconds)
            let fields: [String] = [candidate.store, key.store, key.sku, "\(crossing.ordinal)", crossing.signal,
                                    "\(candidate.meters)", "\(crossing.stock)", "\(threshold)", "\(issuedMs)"]
            try tx.insert(into: RetailSchema.promotions.name, primaryKey: DerivedKey.make("P-", ["promotion"] + fields), [
                Column.targetStore: .text(candidate.store), Column.sourceStore: .text(key.store), Column.sku: .text(key.sku),
                Column.crossing: .integer(crossing.ordinal), Column.crossingSignal: .text(crossing.signal),
                Column.distanceM: .integer(candidate.meters), Column.stockAtCrossing: .integer(crossing.stock),
                Column.threshold: .integer(threshold), Column.issuedMs: .integer(issuedMs),
            ], version: Version(hlc: crossing.version.hlc, origin: RulesOrigin.promotions))
            issued += 1
        }
        return issued
    }

    /// Great-circle distance (haversine, mean Earth radius) in whole metres.
    static func meters(from a: (Double, Double), to b: (Double, Double)) -> Int64 {
        let radians = Double.pi / 180
        let dLat = (b.0 - a.0) * radians
        let dLon = (b.1 - a.1) * radians
        let h = sin(dLat / 2) * sin(dLat / 2) + cos(a.0 * radians) * cos(b.0 * radians) * sin(dLon / 2) * sin(dLon / 2)
        let meters = 2 * earthRadiusMeters * asin(min(1, h.squareRoot()))
        return Int64(meters.rounded())
    }
}
