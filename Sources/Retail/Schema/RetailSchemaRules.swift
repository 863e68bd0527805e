public import SyncEngine

/// The application schema of every replicated retail table (Protocol/SCHEMA.md states the same,
/// and a test keeps the two equal): storage classes, required columns, bounds, key formats and
/// writers. Hubs check every pushed row against it before applying anything (`ChangesetValidator`),
/// and the retail write paths check their rows against it before writing.
///
/// Personal-data columns (`customer_name`, `phone`, `phone_normalized`) are optional: an erasure
/// sets them to NULL, and an erased row must still replicate.
public enum RetailSchemaRules {
    private static let stageNames = FunnelStage.allCases.map(\.rawValue)
    private static let quantity = RetailBounds.maximumQuantity
    private static let time = RetailBounds.time

    public static let stores = TableRules(RetailSchema.stores, key: .identifier, writers: [.hub], [
        optional(Column.name, .text(.line(maxBytes: 800))),
        required(Column.region, .text(.identifier)),
        required(Column.latitude, .real(-90...90)),
        required(Column.longitude, .real(-180...180)),
    ])

    public static let leads = TableRules(RetailSchema.leads, key: .ulid, writers: [.terminal, .rules], [
        required(Column.store, .text(.identifier)),
        optional(Column.ownerGuide, .text(.identifier)),
        optional(Column.customerName, .text(.line(maxBytes: 800))),
        optional(Column.phone, .text(.phone)),
        optional(Column.phoneNormalized, .text(.normalizedPhone)),
        optional(Column.source, .text(.line(maxBytes: 256))),
        optional(Column.score, .integer(RetailBounds.score)),
        required(Column.grade, .text(.oneOf(LeadGrade.allCases.map(\.rawValue)))),
        required(Column.stage, .text(.oneOf(stageNames))),
        optional(Column.previousStage, .text(.oneOf(stageNames))),
        required(Column.createdMs, .integer(time)),
        optional(Column.lastTouchMs, .integer(time)),
        optional(Column.nextActionDueMs, .integer(time)),
        optional(Column.firstResponseMs, .integer(time)),
        optional(Column.canonicalID, .text(.ulid)),
    ])

    public static let visits = TableRules(RetailSchema.visits, key: .ulid, writers: [.terminal], [
        required(Column.store, .text(.identifier)),
        required(Column.guide, .text(.identifier)),
        optional(Column.lead, .text(.ulid)),
        optional(Column.customerName, .text(.line(maxBytes: 800))),
        required(Column.atMs, .integer(time)),
        optional(Column.durationMin, .integer(RetailBounds.visitMinutes)),
        optional(Column.products, .text(.identifierList(maxBytes: 4_096))),
        optional(Column.outcome, .text(.line(maxBytes: 2_000))),
    ])

    public static let inventorySignals = TableRules(RetailSchema.inventorySignals, key: .ulid, writers: [.terminal], [
        required(Column.store, .text(.identifier)),
        required(Column.sku, .text(.identifier)),
        required(Column.kind, .text(.oneOf(SignalKind.allCases.map(\.rawValue)))),
        required(Column.quantity, .integer(-quantity...quantity)),
        required(Column.atMs, .integer(time)),
        optional(Column.guide, .text(.identifier)),
    ])

    public static let thresholds = TableRules(RetailSchema.thresholds, key: .identifierPair, writers: [.hub], [
        required(Column.store, .text(.identifier)),
        required(Column.sku, .text(.identifier)),
        required(Column.minQuantity, .integer(0...quantity)),
    ])

    public static let sales = TableRules(RetailSchema.sales, key: .ulid, writers: [.terminal], [
        required(Column.store, .text(.identifier)),
        required(Column.guide, .text(.identifier)),
        required(Column.sku, .text(.identifier)),
        required(Column.quantity, .integer(1...quantity)),
        required(Column.amountCents, .integer(0...RetailBounds.maximumAmountCents)),
        required(Column.atMs, .integer(time)),
        optional(Column.lead, .text(.ulid)),
    ])

    public static let promotions = TableRules(RetailSchema.promotions, key: .derivedKey(prefix: "P-"), writers: [.rules], [
        required(Column.targetStore, .text(.identifier)),
        required(Column.sourceStore, .text(.identifier)),
        required(Column.sku, .text(.identifier)),
        required(Column.crossing, .integer(1...Int64.max)),
        required(Column.crossingSignal, .text(.ulid)),
        required(Column.distanceM, .integer(0...RetailBounds.maximumDistanceMeters)),
        // Stock after a crossing is below the threshold; sales before any stocktake can take it far below 0.
        required(Column.stockAtCrossing, .integer(Int64.min...quantity)),
        required(Column.threshold, .integer(0...quantity)),
        required(Column.issuedMs, .integer(time)),
    ])

    public static let ruleReviews = TableRules(RetailSchema.ruleReviews, key: .derivedKey(prefix: "R-"), writers: [.rules], [
        // Open sets (identifiers, not a list): a newer hub's new rule or action must still replicate through an older one.
        required(Column.rule, .text(.identifier)),
        optional(Column.store, .text(.identifier)),
        required(Column.subjectTable, .text(.identifier)),
        required(Column.subjectID, .text(.ulid)),
        required(Column.action, .text(.identifier)),
        required(Column.detail, .text(.line(maxBytes: 1_000))),
        required(Column.atMs, .integer(time)),
    ])

    public static let all: [TableRules] = [stores, leads, visits, inventorySignals, thresholds, sales, promotions, ruleReviews]

    private static let byName: [TableName: TableRules] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The rules of a retail table; nil for a table the application schema does not know.
    public static func table(_ name: TableName) -> TableRules? { byName[name] }

    private static func required(_ name: ColumnName, _ rule: ValueRule) -> ColumnRule { ColumnRule(name, required: true, rule) }
    private static func optional(_ name: ColumnName, _ rule: ValueRule) -> ColumnRule { ColumnRule(name, required: false, rule) }
}
