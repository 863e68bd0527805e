public import SyncEngine

/// The replicated tables of a StoreSync deployment: plain SQL tables every replica holds (each
/// for its scope), queryable with the `sqlite3` shell. Amounts are integer cents, times are
/// milliseconds since the Unix epoch (UTC), keys are device-generated ULIDs unless noted.
public enum RetailSchema {
    /// Reference data: one row per store. Key: the store id chosen by the operator (e.g. `S001`).
    public static let stores = table("stores", .lastWriterWins, [
        ("name", .text), ("region", .text), ("latitude", .real), ("longitude", .real),
    ], indexes: [["region"]])

    /// A customer lead owned by a guide. Per-column last-writer-wins: concurrent edits of
    /// different fields both survive. `canonical_id` points to the surviving lead when central
    /// rules merged duplicates.
    public static let leads = table("leads", .lastWriterWins, [
        ("store", .text), ("owner_guide", .text), ("customer_name", .text), ("phone", .text),
        ("phone_normalized", .text), ("source", .text), ("score", .integer), ("grade", .text),
        ("stage", .text), ("created_ms", .integer), ("last_touch_ms", .integer),
        ("next_action_due_ms", .integer), ("first_response_ms", .integer), ("canonical_id", .text),
    ], indexes: [["store", "stage"], ["store", "phone_normalized"]])

    /// A customer visit logged by a guide (insert-only).
    public static let visits = table("visits", .insertOnly, [
        ("store", .text), ("guide", .text), ("lead", .text), ("customer_name", .text),
        ("at_ms", .integer), ("duration_min", .integer), ("products", .text), ("outcome", .text),
    ], indexes: [["store", "at_ms"], ["lead"]])

    /// Stock events per (store, SKU) (insert-only): `kind` is sale, receipt, adjustment
    /// (signed deltas in `quantity`) or stocktake (an absolute count in `quantity`).
    public static let inventorySignals = table("inventory_signals", .insertOnly, [
        ("store", .text), ("sku", .text), ("kind", .text), ("quantity", .integer),
        ("at_ms", .integer), ("guide", .text),
    ], indexes: [["store", "sku"]])

    /// Safety stock per (store, SKU). Key: `<store>/<sku>`, so every replica names it alike.
    public static let thresholds = table("thresholds", .lastWriterWins, [
        ("store", .text), ("sku", .text), ("min_quantity", .integer),
    ], indexes: [["store", "sku"]])

    /// Order lines (insert-only). Amounts are exact integer cents.
    public static let sales = table("sales", .insertOnly, [
        ("store", .text), ("guide", .text), ("sku", .text), ("quantity", .integer),
        ("amount_cents", .integer), ("at_ms", .integer), ("lead", .text),
    ], indexes: [["store", "at_ms"], ["lead"]])

    /// Promotion suggestions issued by central rules to a store (insert-only). The key is derived
    /// from (source store, SKU, crossing, target store), so every hub issues the same rows.
    public static let promotions = table("promotions", .insertOnly, [
        ("target_store", .text), ("source_store", .text), ("sku", .text), ("crossing", .integer),
        ("distance_m", .integer), ("stock_at_crossing", .integer), ("threshold", .integer), ("issued_ms", .integer),
    ], indexes: [["target_store"]])

    /// What central rules did, for people to review (insert-only, deterministic keys).
    public static let ruleReviews = table("rule_reviews", .insertOnly, [
        ("rule", .text), ("store", .text), ("subject_table", .text), ("subject_id", .text),
        ("action", .text), ("detail", .text), ("at_ms", .integer),
    ], indexes: [["store"]])

    public static let all: [TableSchema] = [stores, leads, visits, inventorySignals, thresholds, sales, promotions, ruleReviews]

    /// The widest table's column count (turns a cell budget into a row budget for batches).
    public static let widestTableColumns = all.map(\.columns.count).max() ?? 1

    private static func table(_ name: String, _ kind: TableKind, _ columns: [(String, ColumnType)], indexes: [[String]] = []) -> TableSchema {
        do {
            return try TableSchema(name, kind: kind, columns: columns, indexes: indexes)
        } catch {
            // The schema is a literal in this file: an invalid one is a programming error caught by the first test run.
            preconditionFailure("invalid built-in schema for \(name): \(error)")
        }
    }
}
