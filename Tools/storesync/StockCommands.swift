import Foundation
import Retail
import SyncEngine

/// `storesync stock sale|receive|adjust|count --db PATH --sku SKU --qty N [--guide G] [--format text|json]`
func stockSignalCommand(_ kind: SignalKind) -> @Sendable (Arguments) throws -> Void {
    { arguments in
        try arguments.rejectUnknown(allowed: ["db", "sku", "qty", "guide", "format", "request-id"])
        let format = try OutputFormat(arguments)
        let sku = try arguments.required("sku")
        guard let quantity = try wholeNumber(arguments, "qty") else { throw UsageError(message: "missing --qty") }
        let (replica, store) = try openTerminal(arguments)
        let table = RetailSchema.inventorySignals
        let created = try createOnce(arguments, command: "stock \(kind.rawValue)", replica: replica, tables: [table]) {
            [table.name.rawValue: try retail {
                try FieldActivity.recordSignal(kind, sku: sku, quantity: quantity, guide: arguments.optional("guide"), store: store,
                                               in: replica, now: now(replica))
            }]
        }
        let id = created[table.name.rawValue] ?? ""
        if format == .json { try printJSON(["id": id]) } else { print(id) }
    }
}

/// `storesync stock show --db PATH [--sku SKU] [--format text|json]`
func runStockShow(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "sku", "format"])
    let format = try OutputFormat(arguments)
    let sku = try arguments.optional("sku").map { sku in try retail { try Identifier.check(sku, field: "--sku") } }
    let (replica, store) = try openTerminal(arguments)
    let levels = try StockLedger.levels(in: replica, store: store, sku: sku)
    if format == .json {
        try printJSON(levels.map { StockJSON(sku: $0.sku, stock: $0.stock, threshold: $0.threshold, below_threshold: $0.isBelowThreshold, signals: $0.signals) })
        return
    }
    printTable(["SKU", "STOCK", "THRESHOLD", "BELOW"], levels.map { level in
        [level.sku, "\(level.stock)", level.threshold.map { "\($0)" } ?? "-", level.isBelowThreshold ? "yes" : "no"]
    })
}

private struct StockJSON: Encodable {
    var sku: String
    var stock: Int64
    var threshold: Int64?
    var below_threshold: Bool
    var signals: Int

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sku, forKey: .sku)
        try container.encode(stock, forKey: .stock)
        try container.encode(threshold, forKey: .threshold)
        try container.encode(below_threshold, forKey: .below_threshold)
        try container.encode(signals, forKey: .signals)
    }

    private enum CodingKeys: String, CodingKey { case sku, stock, threshold, below_threshold, signals }
}

/// `storesync sale record --db PATH --guide G --sku SKU --qty N --amount AMOUNT [--lead ID] [--format text|json]`
func runSaleRecord(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "guide", "sku", "qty", "amount", "lead", "format", "request-id"])
    let format = try OutputFormat(arguments)
    let guide = try arguments.required("guide")
    let sku = try arguments.required("sku")
    guard let quantity = try wholeNumber(arguments, "qty") else { throw UsageError(message: "missing --qty") }
    let cents = try retail { try Money.cents(parsing: try arguments.required("amount")) }
    let (replica, store) = try openTerminal(arguments)
    let (sales, signals) = (RetailSchema.sales.name.rawValue, RetailSchema.inventorySignals.name.rawValue)
    let created = try createOnce(arguments, command: "sale record", replica: replica, tables: [RetailSchema.sales, RetailSchema.inventorySignals]) {
        let ids = try retail {
            try FieldActivity.recordSale(guide: guide, sku: sku, quantity: quantity, amountCents: cents, lead: arguments.optional("lead"),
                                         store: store, in: replica, now: now(replica))
        }
        return [sales: ids.sale, signals: ids.signal]
    }
    let sale = created[sales] ?? ""
    if format == .json { try printJSON(["id": sale, "signal": created[signals] ?? ""]) } else { print(sale) }
}

/// `storesync promotions --db PATH [--format text|json]`: the suggestions addressed to this store.
func runPromotions(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "format"])
    let format = try OutputFormat(arguments)
    let (replica, store) = try openTerminal(arguments)
    let suggestions = try Promotions.addressed(to: store, in: replica)
    if format == .json {
        try printJSON(suggestions.map {
            PromotionJSON(id: $0.id, source_store: $0.sourceStore, sku: $0.sku, crossing: $0.crossing, distance_m: $0.distanceMeters,
                          stock_at_crossing: $0.stockAtCrossing, threshold: $0.threshold, issued_ms: $0.issuedMs)
        })
        return
    }
    printTable(["ID", "SKU", "LOW_AT", "DISTANCE_KM", "STOCK", "THRESHOLD", "ISSUED"], suggestions.map { suggestion in
        [suggestion.id, suggestion.sku, suggestion.sourceStore, String(format: "%.1f", Double(suggestion.distanceMeters) / 1000),
         "\(suggestion.stockAtCrossing)", "\(suggestion.threshold)", timeText(suggestion.issuedMs)]
    })
}

private struct PromotionJSON: Encodable {
    var id: String
    var source_store: String
    var sku: String
    var crossing: Int64
    var distance_m: Int64
    var stock_at_crossing: Int64
    var threshold: Int64
    var issued_ms: Int64
}

/// `storesync store add --db PATH --id S --region R --lat X --lon Y [--name N]` (hub or HQ replica)
func runStoreAdd(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "id", "region", "lat", "lon", "name", "format", "request-id"])
    let format = try OutputFormat(arguments)
    let id = try arguments.required("id")
    let region = try arguments.required("region")
    let latitude = try degrees(arguments, "lat")
    let longitude = try degrees(arguments, "lon")
    let (replica, scope) = try openOperatorReplica(arguments)
    if case .region(let own) = scope, own != region {
        throw CommandError("this hub serves region \(own); add stores of region \(region) at HQ or on that region's hub")
    }
    // Registering a store is idempotent anyway; a key makes a repeat print what the first run did.
    _ = try createOnce(arguments, command: "store add", replica: replica, tables: []) {
        try retail {
            try ReferenceData.setStore(id: id, region: region, latitude: latitude, longitude: longitude, name: arguments.optional("name"),
                                       in: replica)
        }
        return [RetailSchema.stores.name.rawValue: id]
    }
    if format == .json { try printJSON(["id": id]) } else { print(id) }
}

private func degrees(_ arguments: Arguments, _ name: String) throws -> Double {
    let text = try arguments.required(name)
    guard let value = Double(text), value.isFinite else { throw UsageError(message: "--\(name) must be decimal degrees, got \(text)") }
    return value
}

/// `storesync threshold set --db PATH --store S --sku K --min N` (hub or HQ replica)
func runThresholdSet(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "store", "sku", "min", "format", "request-id"])
    let format = try OutputFormat(arguments)
    let store = try arguments.required("store")
    let sku = try arguments.required("sku")
    guard let minimum = try wholeNumber(arguments, "min") else { throw UsageError(message: "missing --min") }
    let (replica, scope) = try openOperatorReplica(arguments)
    let region = try replica.read { database in
        try database.fetchAll("SELECT region FROM stores WHERE id = ?", [.text(store)]).first.map { $0[0].textValue }
    }
    guard let region else { throw CommandError("store \(store) is not registered here; add it with `storesync store add`") }
    if case .region(let own) = scope, region != own {
        throw CommandError("store \(store) is in region \(region ?? "none"), not in this hub's region \(own)")
    }
    let key = try createOnce(arguments, command: "threshold set", replica: replica, tables: []) {
        [RetailSchema.thresholds.name.rawValue: try retail { try ReferenceData.setThreshold(store: store, sku: sku, minimum: minimum, in: replica) }]
    }[RetailSchema.thresholds.name.rawValue] ?? ""
    if format == .json { try printJSON(["id": key]) } else { print(key) }
}
