import SQLite
import SyncEngine

/// The `stock` view: every (store, SKU) with a safety threshold whose stock is below it now, or
/// for which promotions were issued in the date range; with the promotions the crossings raised.
/// Crossings are counted by their signal (`crossing_signal`, a crossing's identity), not by
/// their ordinal: a late signal can renumber crossings after suggestions were issued, so two
/// crossings of a pair may carry the same `crossing`.
///
/// Stock is computed as every replica computes it (`StockLedger`), in one pass over the signals
/// and their versions, not one pass per store. The view lists (store, SKU) pairs whatever `--by`
/// says; its date range applies to when promotions were issued.
enum StockView {
    static let columns = ["region", "store", "sku", "stock", "safety_stock", "below", "crossings", "promotions"]

    private static let signalsSQL = "SELECT id, store, sku, kind, quantity FROM inventory_signals"
    private static let thresholdsSQL = """
        SELECT t.store, t.sku, t.min_quantity, st.region FROM thresholds AS t LEFT JOIN stores AS st ON st.id = t.store
        """
    private static let promotionsSQL = """
        SELECT source_store, sku, count(DISTINCT crossing_signal), count(*) FROM promotions AS t
        WHERE (?1 IS NULL OR t.issued_ms >= ?1) AND (?2 IS NULL OR t.issued_ms < ?2)
        GROUP BY source_store, sku
        """

    private struct Pair: Hashable, Comparable {
        var store: String
        var sku: String
        static func < (lhs: Pair, rhs: Pair) -> Bool { (lhs.store, lhs.sku) < (rhs.store, rhs.sku) }
    }

    static func run(_ query: ReportQuery, from source: any ReplicaReading) throws -> ViewTable {
        let range: [SQLValue] = [query.fromMilliseconds.map(SQLValue.integer) ?? .null,
                                 query.untilMilliseconds.map(SQLValue.integer) ?? .null]
        let (signals, thresholds, promotions) = try source.read { database in
            (try database.fetchAll(signalsSQL), try database.fetchAll(thresholdsSQL), try database.fetchAll(promotionsSQL, range))
        }
        var signalOf: [String: (pair: Pair, kind: SignalKind, quantity: Int64)] = [:]
        for row in signals {
            guard let id = row[0].textValue, let store = row[1].textValue, let sku = row[2].textValue,
                  let kind = row[3].textValue.flatMap(SignalKind.init(rawValue:)), let quantity = row[4].integerValue else { continue }
            signalOf[id] = (Pair(store: store, sku: sku), kind, quantity)
        }
        var events: [Pair: [StockEvent]] = [:]
        try source.forEachRowVersion(in: RetailSchema.inventorySignals.name) { key, version in
            guard let signal = signalOf[key] else { return }
            events[signal.pair, default: []].append(StockEvent(signal: key, version: version, kind: signal.kind, quantity: signal.quantity))
        }
        var issued: [Pair: (crossings: Int64, rows: Int64)] = [:]
        for row in promotions {
            guard let store = row[0].textValue, let sku = row[1].textValue else { continue }
            issued[Pair(store: store, sku: sku)] = (row[2].integerValue ?? 0, row[3].integerValue ?? 0)
        }
        var rows: [(Pair, [SQLValue])] = []
        for row in thresholds {
            guard let store = row[0].textValue, let sku = row[1].textValue, let minimum = row[2].integerValue else { continue }
            let pair = Pair(store: store, sku: sku)
            let stock = StockLedger.stock(of: events[pair] ?? [])
            let promoted = issued[pair]
            guard stock < minimum || promoted != nil else { continue }
            rows.append((pair, [row[3], .text(store), .text(sku), .integer(stock), .integer(minimum),
                                .text(stock < minimum ? "yes" : "no"), .integer(promoted?.crossings ?? 0), .integer(promoted?.rows ?? 0)]))
        }
        return ViewTable(columns: columns, rows: rows.sorted { $0.0 < $1.0 }.map(\.1))
    }
}
