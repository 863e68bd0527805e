public import SyncEngine
import SQLite

/// What an inventory signal records.
public enum SignalKind: String, CaseIterable, Sendable {
    /// Units sold: a negative delta.
    case sale
    /// Units received: a positive delta.
    case receipt
    /// A correction (breakage, theft, found units): a signed delta.
    case adjustment
    /// A count of what is on the shelf: an absolute quantity.
    case stocktake
}

/// One inventory signal as the stock fold sees it.
public struct StockEvent: Sendable, Hashable {
    public var signal: String
    public var version: Version
    public var kind: SignalKind
    public var quantity: Int64

    public init(signal: String, version: Version, kind: SignalKind, quantity: Int64) {
        self.signal = signal
        self.version = version
        self.kind = kind
        self.quantity = quantity
    }

    /// Version order, as every replica orders the events alike (keys break an impossible tie).
    static func inOrder(_ lhs: StockEvent, _ rhs: StockEvent) -> Bool {
        lhs.version != rhs.version ? lhs.version < rhs.version : lhs.signal < rhs.signal
    }
}

/// The state of one (store, SKU) after a prefix of its version-ordered events.
///
/// Stock starts at 0; a stocktake sets it, a delta adds to it (saturating, so no input can trap).
/// With a threshold, an event that leaves stock below it while the pair is *armed* is a
/// crossing: it counts one more crossing and disarms; stock at or above the threshold arms (and
/// re-arms) the pair. A pair starts disarmed: stock must first be seen at or above the threshold
/// to *fall* below it, so a sale that reaches the hub before the stocktake it follows is no
/// crossing, and a store that never had enough never raises one.
public struct StockFold: Sendable, Hashable {
    public var stock: Int64 = 0
    public var armed = false
    public var crossings: Int64 = 0

    public init() {}

    init(stock: Int64, armed: Bool, crossings: Int64) {
        self.stock = stock
        self.armed = armed
        self.crossings = crossings
    }

    /// Applies the next event; returns true when it is a crossing.
    public mutating func apply(_ kind: SignalKind, _ quantity: Int64, threshold: Int64?) -> Bool {
        if kind == .stocktake {
            stock = quantity
        } else {
            let (sum, overflow) = stock.addingReportingOverflow(quantity)
            stock = overflow ? (quantity < 0 ? .min : .max) : sum
        }
        guard let threshold else { return false }
        if stock >= threshold {
            armed = true
            return false
        }
        guard armed else { return false }
        armed = false
        crossings += 1
        return true
    }
}

/// Stock as a CRDT: stock(store, SKU) is the latest stocktake by version plus every delta after
/// it by version (deltas before the first stocktake count from 0). "By version" is the engine's
/// order of writes, (hybrid-logical-clock reading, replica id), the same on every replica, so every
/// replica that holds the same signals computes the same stock, whatever order they arrived in.
public enum StockLedger {
    /// The stock after `events`, in whatever order they are given.
    public static func stock(of events: [StockEvent]) -> Int64 {
        var fold = StockFold()
        for event in events.sorted(by: StockEvent.inOrder) { _ = fold.apply(event.kind, event.quantity, threshold: nil) }
        return fold.stock
    }

    /// The stock of one SKU of a store.
    public struct Level: Sendable, Hashable {
        public var sku: String
        public var stock: Int64
        /// The safety threshold (`min_quantity`), if one is set.
        public var threshold: Int64?
        public var signals: Int

        public var isBelowThreshold: Bool { threshold.map { stock < $0 } ?? false }
    }

    private static let signalsOfStoreSQL = "SELECT id, sku, kind, quantity FROM inventory_signals WHERE store = ?1 AND (?2 IS NULL OR sku = ?2)"
    private static let thresholdsOfStoreSQL = "SELECT sku, min_quantity FROM thresholds WHERE store = ?1 AND (?2 IS NULL OR sku = ?2)"

    /// Every SKU of `store` with signals or a threshold (or just `sku`), sorted by SKU, computed
    /// from the replica's signals and their versions.
    public static func levels(in replica: any ReplicaReading, store: String, sku: String? = nil) throws -> [Level] {
        let parameters: [SQLValue] = [.text(store), sku.map(SQLValue.text) ?? .null]
        let (rows, thresholds) = try replica.read { database in
            (try database.fetchAll(signalsOfStoreSQL, parameters), try database.fetchAll(thresholdsOfStoreSQL, parameters))
        }
        var wanted: [String: (sku: String, kind: SignalKind, quantity: Int64)] = [:]
        for row in rows {
            guard let id = row[0].textValue, let sku = row[1].textValue,
                  let kind = row[2].textValue.flatMap(SignalKind.init(rawValue:)), let quantity = row[3].integerValue else { continue }
            wanted[id] = (sku, kind, quantity)
        }
        var events: [String: [StockEvent]] = [:]
        if !wanted.isEmpty {
            try replica.forEachRowVersion(in: RetailSchema.inventorySignals.name) { key, version in
                guard let signal = wanted[key] else { return }
                events[signal.sku, default: []].append(StockEvent(signal: key, version: version, kind: signal.kind, quantity: signal.quantity))
            }
        }
        var thresholdOf: [String: Int64] = [:]
        for row in thresholds {
            if let sku = row[0].textValue, let minimum = row[1].integerValue { thresholdOf[sku] = minimum }
        }
        return Set(events.keys).union(thresholdOf.keys).sorted().map { sku in
            let list = events[sku] ?? []
            return Level(sku: sku, stock: stock(of: list), threshold: thresholdOf[sku], signals: list.count)
        }
    }
}
