public import SyncEngine

/// The replicated tables of a StoreSync deployment: plain SQL tables every replica holds (each
/// for its scope), queryable with the `sqlite3` shell. They are a public interface: scripts and
/// analysts query these names and columns.
///
/// Conventions: amounts are exact integer cents (never floating point); times are milliseconds
/// since the Unix epoch (UTC); keys are device-generated ULIDs unless noted; store, guide and SKU
/// ids are operator-chosen identifiers (1–64 letters, digits, `-`, `_`, `.`). Rows written by the
/// central rules (compensations, links, promotions, reviews) carry deterministic keys and
/// versions, so every hub that derives one writes the same row.
///
/// What each column may hold (storage classes, required columns, bounds, formats) is the
/// application schema, `RetailSchemaRules`, stated for other languages in Protocol/SCHEMA.md.
public enum RetailSchema {
    /// Reference data, one row per store, written by HQ or hub operators (`storesync store add`).
    /// Key: the store id (e.g. `S001`).
    /// - `name`: display name (may be NULL).
    /// - `region`: the region id; a regional hub serves the stores of its region.
    /// - `latitude`, `longitude`: WGS84 degrees; the promotion rule measures great-circle distances between stores with them.
    public static let stores = table("stores", .lastWriterWins, [
        ("name", .text), ("region", .text), ("latitude", .real), ("longitude", .real),
    ], indexes: [["region"]])

    /// A customer lead, owned by a guide of one store. Every column is its own last-writer-wins
    /// register: concurrent edits of different fields both survive.
    /// - `store`: the store id. `owner_guide`: the guide id responsible (may be NULL).
    /// - `customer_name`, `phone`: as entered (personal data: never logged).
    /// - `phone_normalized`: the phone without formatting (`+8613800138000`); duplicates are found on (store, phone_normalized).
    /// - `source`: the channel the lead came from (e.g. `walk-in`), free text.
    /// - `score`: 0–100 or NULL. `grade`: `A` (score ≥ 85), `B` (60–84), `C` (< 60 or no score).
    /// - `stage`: `reached`, `needs-confirmed`, `demo`, `negotiation`, `won` or `lost`.
    /// - `previous_stage`: the stage the last stage change moved from (NULL for a new lead); written
    ///   together with `stage`, it lets the hub check each step even when several were made offline.
    /// - `created_ms`: creation time. `last_touch_ms`: the last visit, stage change or sale with the lead (NULL: none yet).
    /// - `next_action_due_ms`: follow-up due: (last touch, else creation) + 48 h (A), 72 h (B) or 7 days (C); NULL once won or lost.
    /// - `first_response_ms`: the first touch after creation (NULL: none yet).
    /// - `canonical_id`: NULL for a canonical lead; for a duplicate (same normalised phone in the same store,
    ///   created later by version), the id of the canonical lead, set by the central rules.
    public static let leads = table("leads", .lastWriterWins, [
        ("store", .text), ("owner_guide", .text), ("customer_name", .text), ("phone", .text),
        ("phone_normalized", .text), ("source", .text), ("score", .integer), ("grade", .text),
        ("stage", .text), ("previous_stage", .text), ("created_ms", .integer), ("last_touch_ms", .integer),
        ("next_action_due_ms", .integer), ("first_response_ms", .integer), ("canonical_id", .text),
    ], indexes: [["store", "stage"], ["store", "phone_normalized"], ["canonical_id"]])

    /// A customer visit logged by a guide (insert-only).
    /// - `store`, `guide`: where and who. `lead`: the lead visited (NULL: an anonymous walk-in).
    /// - `customer_name`: as entered (may be NULL). `at_ms`: when it was logged.
    /// - `duration_min`: minutes (may be NULL). `products`: SKUs viewed, comma-separated (may be NULL).
    /// - `outcome`: free text (may be NULL).
    public static let visits = table("visits", .insertOnly, [
        ("store", .text), ("guide", .text), ("lead", .text), ("customer_name", .text),
        ("at_ms", .integer), ("duration_min", .integer), ("products", .text), ("outcome", .text),
    ], indexes: [["store", "at_ms"], ["lead"]])

    /// Stock events per (store, SKU) (insert-only). Stock is the latest `stocktake` by version
    /// plus every delta after it by version (see `StockLedger`).
    /// - `kind`: `sale` (negative delta), `receipt` (positive delta), `adjustment` (signed delta)
    ///   or `stocktake` (an absolute count).
    /// - `quantity`: the signed delta, or the counted quantity of a stocktake.
    /// - `at_ms`: when it was recorded. `guide`: who recorded it (may be NULL).
    public static let inventorySignals = table("inventory_signals", .insertOnly, [
        ("store", .text), ("sku", .text), ("kind", .text), ("quantity", .integer),
        ("at_ms", .integer), ("guide", .text),
    ], indexes: [["store", "sku"]])

    /// Safety stock per (store, SKU), set by operators. Key: `<store>/<sku>`, so every replica
    /// names it alike. `min_quantity`: stock below it is a crossing (see the promotion rule).
    public static let thresholds = table("thresholds", .lastWriterWins, [
        ("store", .text), ("sku", .text), ("min_quantity", .integer),
    ], indexes: [["store", "sku"]])

    /// Order lines (insert-only). `quantity` units of `sku` for `amount_cents` (exact integer
    /// cents) at `at_ms`, sold by `guide` at `store`; `lead` is the lead it closed (may be NULL).
    public static let sales = table("sales", .insertOnly, [
        ("store", .text), ("guide", .text), ("sku", .text), ("quantity", .integer),
        ("amount_cents", .integer), ("at_ms", .integer), ("lead", .text),
    ], indexes: [["store", "at_ms"], ["lead"]])

    /// Promotion suggestions issued by the central rules (insert-only): `source_store` ran low on
    /// `sku`, and `target_store`, one of the 5 nearest stores of its region with the SKU in stock,
    /// is asked to promote it.
    /// - `crossing_signal`: the `inventory_signals` id whose application took stock below the threshold: the crossing's
    ///   identity (count crossings by it).
    /// - `crossing`: the ordinal of this crossing of the threshold in the (store, SKU)'s version-ordered history (1, 2, …),
    ///   as that history stood when the hub judged the crossing.
    /// - `distance_m`: great-circle distance between the stores, whole metres.
    /// - `stock_at_crossing`: the source store's stock right after the crossing signal, as evaluated when the crossing was
    ///   judged. `threshold`: the `min_quantity` crossed.
    /// - `crossing` and `stock_at_crossing` are never updated: a signal of the source store that reaches the hub later with
    ///   an earlier version can renumber the crossings after it and change the stock after them (so two crossings of one
    ///   pair may share an ordinal); the rows already issued keep the values they were issued with.
    /// - `issued_ms`: the crossing signal's time (its version's clock), not the hub's: every hub issues the same row.
    /// Key: `P-` and 32 hex digits of a SHA-256 over every other column, so every hub derives the same key.
    public static let promotions = table("promotions", .insertOnly, [
        ("target_store", .text), ("source_store", .text), ("sku", .text), ("crossing", .integer),
        ("crossing_signal", .text), ("distance_m", .integer), ("stock_at_crossing", .integer), ("threshold", .integer),
        ("issued_ms", .integer),
    ], indexes: [["target_store"], ["source_store", "sku"]])

    /// What the central rules did or refused, for people to review (insert-only).
    /// - `rule`: `funnel` or `duplicate_leads`. `store`: the store concerned.
    /// - `subject_table`, `subject_id`: the row concerned (a lead).
    /// - `action`: `stage_skip_refused`, `stage_regress_refused`, `won_lost_conflict` or `duplicate_lead`.
    /// - `detail`: a short explanation without personal data. `at_ms`: the time of the write that caused it.
    /// Key: `R-` and 32 hex digits of a SHA-256 over its columns and the version of the write that
    /// caused it, so every hub derives the same key.
    public static let ruleReviews = table("rule_reviews", .insertOnly, [
        ("rule", .text), ("store", .text), ("subject_table", .text), ("subject_id", .text),
        ("action", .text), ("detail", .text), ("at_ms", .integer),
    ], indexes: [["store"], ["subject_id"]])

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
