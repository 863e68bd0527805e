public import SyncEngine
import SQLite

/// A visit as a guide logs it.
public struct VisitDraft: Sendable {
    public var guide: String
    public var lead: String?
    public var customerName: String?
    public var durationMinutes: Int64?
    public var products: [String]
    public var outcome: String?

    public init(guide: String, lead: String? = nil, customerName: String? = nil, durationMinutes: Int64? = nil,
                products: [String] = [], outcome: String? = nil) {
        self.guide = guide
        self.lead = lead
        self.customerName = customerName
        self.durationMinutes = durationMinutes
        self.products = products
        self.outcome = outcome
    }
}

/// A guide's insert-only records on a terminal: visits, stock signals, sales. Each is one
/// transaction, validated first, so refused input changes nothing.
public enum FieldActivity {
    /// Logs a visit; a visit with a lead counts as a touch of it. Returns the visit's id.
    public static func logVisit(_ draft: VisitDraft, store: String, in replica: Replica, now: Int64) throws -> String {
        let guide = try Identifier.check(draft.guide, field: "--guide")
        let customer = try draft.customerName.map { try Identifier.text($0, field: "--customer") }
        let outcome = try draft.outcome.map { try Identifier.text($0, field: "--outcome", limit: 500) }
        if let minutes = draft.durationMinutes, !(0...1_440).contains(minutes) {
            throw RetailError.invalidValue(field: "--duration-min", expected: "a whole number of minutes from 0 to 1440")
        }
        let products = try draft.products.map { try Identifier.check($0, field: "--products") }
        let id = UniqueID.make(milliseconds: UInt64(max(0, now)))
        let row: [ColumnName: Value] = [
            Column.store: .text(store), Column.guide: .text(guide), Column.lead: draft.lead.map(Value.text) ?? .null,
            Column.customerName: customer.map(Value.text) ?? .null, Column.atMs: .integer(now),
            Column.durationMin: draft.durationMinutes.map(Value.integer) ?? .null,
            Column.products: products.isEmpty ? .null : .text(products.joined(separator: ",")),
            Column.outcome: outcome.map(Value.text) ?? .null,
        ]
        let outcomeOfWrite: Result<Void, RetailError> = try replica.write { tx in
            // An unknown lead is reported as such before the schema's verdict on its id.
            if let lead = draft.lead, !(try Leads.exists(lead, store: store, in: tx)) { return .failure(.unknownLead(lead)) }
            if let refusal = RetailSchemaRules.visits.refusal(key: id, row, whole: true) { return .failure(refusal) }
            if let lead = draft.lead { _ = try Leads.touch(lead, store: store, now: now, in: tx) }
            try tx.insert(into: RetailSchema.visits.name, primaryKey: id, row)
            return .success(())
        }
        try outcomeOfWrite.get()
        return id
    }

    /// The largest quantity one signal or sale line may carry.
    public static let maximumQuantity: Int64 = RetailBounds.maximumQuantity

    /// Records a stock signal for `sku` of `store`; returns its id. `quantity` is what the guide
    /// counted or moved: a sale or a receipt of 1 or more units, a stocktake of 0 or more, an
    /// adjustment of any non-zero signed amount. A sale is stored as a negative delta.
    public static func recordSignal(_ kind: SignalKind, sku: String, quantity: Int64, guide: String?, store: String,
                                    in replica: Replica, now: Int64) throws -> String {
        let id = UniqueID.make(milliseconds: UInt64(max(0, now)))
        let values = try signalValues(kind, sku: sku, quantity: quantity, guide: guide, store: store, now: now)
        if let refusal = RetailSchemaRules.inventorySignals.refusal(key: id, values, whole: true) { throw refusal }
        try replica.write { tx in try tx.insert(into: RetailSchema.inventorySignals.name, primaryKey: id, values) }
        return id
    }

    private static func signalValues(_ kind: SignalKind, sku: String, quantity: Int64, guide: String?, store: String,
                                     now: Int64) throws(RetailError) -> [ColumnName: Value] {
        let sku = try Identifier.check(sku, field: "--sku")
        let guide = try guide.map { guide throws(RetailError) in try Identifier.check(guide, field: "--guide") }
        let limit = maximumQuantity
        let delta: Int64
        switch kind {
        case .sale, .receipt:
            guard (1...limit).contains(quantity) else {
                throw RetailError.invalidValue(field: "--qty", expected: "a whole number of units from 1 to \(limit)")
            }
            delta = kind == .sale ? -quantity : quantity
        case .stocktake:
            guard (0...limit).contains(quantity) else {
                throw RetailError.invalidValue(field: "--qty", expected: "the counted units, a whole number from 0 to \(limit)")
            }
            delta = quantity
        case .adjustment:
            guard quantity != 0, (-limit...limit).contains(quantity) else {
                throw RetailError.invalidValue(field: "--qty", expected: "a non-zero whole number of units from -\(limit) to \(limit)")
            }
            delta = quantity
        }
        return [
            Column.store: .text(store), Column.sku: .text(sku), Column.kind: .text(kind.rawValue),
            Column.quantity: .integer(delta), Column.atMs: .integer(now), Column.guide: guide.map(Value.text) ?? .null,
        ]
    }

    /// Records an order line and, in the same transaction, the matching stock signal (a sale of
    /// `quantity`); a sale with a lead counts as a touch of it. Returns the sale's and the signal's ids.
    public static func recordSale(guide: String, sku: String, quantity: Int64, amountCents: Int64, lead: String?,
                                  store: String, in replica: Replica, now: Int64) throws -> (sale: String, signal: String) {
        let signalValues = try signalValues(.sale, sku: sku, quantity: quantity, guide: guide, store: store, now: now)
        guard (0...RetailBounds.maximumAmountCents).contains(amountCents) else {
            throw RetailError.invalidValue(field: "--amount", expected: "an amount from 0 to \(RetailViews.decimal(cents: RetailBounds.maximumAmountCents)) with at most two decimals, like 12.34")
        }
        let saleID = UniqueID.make(milliseconds: UInt64(max(0, now)))
        let signalID = UniqueID.make(milliseconds: UInt64(max(0, now)))
        let sale: [ColumnName: Value] = [
            Column.store: .text(store), Column.guide: .text(guide), Column.sku: .text(sku), Column.quantity: .integer(quantity),
            Column.amountCents: .integer(amountCents), Column.atMs: .integer(now), Column.lead: lead.map(Value.text) ?? .null,
        ]
        if let refusal = RetailSchemaRules.inventorySignals.refusal(key: signalID, signalValues, whole: true) { throw refusal }
        let outcome: Result<Void, RetailError> = try replica.write { tx in
            // An unknown lead is reported as such before the schema's verdict on its id.
            if let lead, !(try Leads.exists(lead, store: store, in: tx)) { return .failure(.unknownLead(lead)) }
            if let refusal = RetailSchemaRules.sales.refusal(key: saleID, sale, whole: true) { return .failure(refusal) }
            if let lead { _ = try Leads.touch(lead, store: store, now: now, in: tx) }
            try tx.insert(into: RetailSchema.sales.name, primaryKey: saleID, sale)
            try tx.insert(into: RetailSchema.inventorySignals.name, primaryKey: signalID, signalValues)
            return .success(())
        }
        try outcome.get()
        return (saleID, signalID)
    }
}

/// A promotion suggestion as a terminal lists it.
public struct PromotionSuggestion: Sendable, Hashable {
    public var id: String
    public var sourceStore: String
    public var sku: String
    public var crossing: Int64
    public var distanceMeters: Int64
    public var stockAtCrossing: Int64
    public var threshold: Int64
    public var issuedMs: Int64
}

public enum Promotions {
    private static let addressedSQL = """
        SELECT id, source_store, sku, crossing, distance_m, stock_at_crossing, threshold, issued_ms
        FROM promotions WHERE target_store = ? ORDER BY issued_ms, id
        """

    /// The suggestions addressed to `store`, oldest first.
    public static func addressed(to store: String, in replica: Replica) throws -> [PromotionSuggestion] {
        let rows = try replica.read { database in try database.fetchAll(addressedSQL, [.text(store)]) }
        return rows.map { row in
            PromotionSuggestion(id: row[0].textValue ?? "", sourceStore: row[1].textValue ?? "", sku: row[2].textValue ?? "",
                                crossing: row[3].integerValue ?? 0, distanceMeters: row[4].integerValue ?? 0,
                                stockAtCrossing: row[5].integerValue ?? 0, threshold: row[6].integerValue ?? 0,
                                issuedMs: row[7].integerValue ?? 0)
        }
    }
}

/// Reference data operators keep on hubs and HQ: stores and safety thresholds.
public enum ReferenceData {
    /// Registers a store or changes its region, position or name.
    public static func setStore(id: String, region: String, latitude: Double, longitude: Double, name: String?,
                                in replica: Replica) throws {
        let id = try Identifier.check(id, field: "--id")
        let region = try Identifier.check(region, field: "--region")
        guard latitude.isFinite, (-90...90).contains(latitude) else {
            throw RetailError.invalidValue(field: "--lat", expected: "degrees from -90 to 90")
        }
        guard longitude.isFinite, (-180...180).contains(longitude) else {
            throw RetailError.invalidValue(field: "--lon", expected: "degrees from -180 to 180")
        }
        let name = try name.map { try Identifier.text($0, field: "--name") }
        // A store's region decides which hub holds its rows; moving it would strand its history
        // on the old region's hub (its peers' cursors have passed it), so it is refused.
        let current = try replica.read { database in
            try database.fetchScalar("SELECT region FROM stores WHERE id = ?", [.text(id)])?.textValue
        }
        if let current, current != region {
            throw RetailError.invalidValue(field: "--region",
                                           expected: "\(current), the region store \(id) is registered in (stores do not move between regions)")
        }
        var values: [ColumnName: Value] = [
            Column.region: .text(region), Column.latitude: .real(latitude), Column.longitude: .real(longitude),
        ]
        if let name { values[Column.name] = .text(name) }
        if let refusal = RetailSchemaRules.stores.refusal(key: id, values, whole: true) { throw refusal }
        try upsert(RetailSchema.stores.name, key: id, values, in: replica)
    }

    /// Sets the safety stock of `sku` at `store`; returns the threshold's key (`store/sku`).
    @discardableResult
    public static func setThreshold(store: String, sku: String, minimum: Int64, in replica: Replica) throws -> String {
        let store = try Identifier.check(store, field: "--store")
        let sku = try Identifier.check(sku, field: "--sku")
        guard (0...FieldActivity.maximumQuantity).contains(minimum) else {
            throw RetailError.invalidValue(field: "--min", expected: "a whole number of units from 0 to \(FieldActivity.maximumQuantity)")
        }
        let key = "\(store)/\(sku)"
        let values: [ColumnName: Value] = [Column.store: .text(store), Column.sku: .text(sku), Column.minQuantity: .integer(minimum)]
        if let refusal = RetailSchemaRules.thresholds.refusal(key: key, values, whole: true) { throw refusal }
        try upsert(RetailSchema.thresholds.name, key: key, values, in: replica)
        return key
    }

    private static let existsSQL = ["stores": "SELECT 1 FROM stores WHERE id = ?", "thresholds": "SELECT 1 FROM thresholds WHERE id = ?"]

    private static func upsert(_ table: TableName, key: String, _ values: [ColumnName: Value], in replica: Replica) throws {
        guard let sql = existsSQL[table.rawValue] else { return }
        try replica.write { tx in
            if try tx.database.fetchScalar(sql, [.text(key)]) != nil {
                try tx.update(table, primaryKey: key, set: values)
            } else {
                try tx.insert(into: table, primaryKey: key, values)
            }
        }
    }
}
