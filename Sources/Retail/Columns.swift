import SyncEngine

/// Column names of the retail tables, checked once: a literal here that is not a valid name is a
/// programming error the first test run catches.
enum Column {
    static let store = name("store")
    static let name = name("name")
    static let region = name("region")
    static let latitude = name("latitude")
    static let longitude = name("longitude")
    static let ownerGuide = name("owner_guide")
    static let customerName = name("customer_name")
    static let phone = name("phone")
    static let phoneNormalized = name("phone_normalized")
    static let source = name("source")
    static let score = name("score")
    static let grade = name("grade")
    static let stage = name("stage")
    static let previousStage = name("previous_stage")
    static let createdMs = name("created_ms")
    static let lastTouchMs = name("last_touch_ms")
    static let nextActionDueMs = name("next_action_due_ms")
    static let firstResponseMs = name("first_response_ms")
    static let canonicalID = name("canonical_id")
    static let guide = name("guide")
    static let lead = name("lead")
    static let atMs = name("at_ms")
    static let durationMin = name("duration_min")
    static let products = name("products")
    static let outcome = name("outcome")
    static let sku = name("sku")
    static let kind = name("kind")
    static let quantity = name("quantity")
    static let minQuantity = name("min_quantity")
    static let amountCents = name("amount_cents")
    static let targetStore = name("target_store")
    static let sourceStore = name("source_store")
    static let crossing = name("crossing")
    static let crossingSignal = name("crossing_signal")
    static let distanceM = name("distance_m")
    static let stockAtCrossing = name("stock_at_crossing")
    static let threshold = name("threshold")
    static let issuedMs = name("issued_ms")
    static let rule = name("rule")
    static let subjectTable = name("subject_table")
    static let subjectID = name("subject_id")
    static let action = name("action")
    static let detail = name("detail")

    private static func name(_ text: String) -> ColumnName {
        do {
            return try ColumnName(text)
        } catch {
            preconditionFailure("invalid built-in column name \(text): \(error)")
        }
    }
}

extension TableChanges {
    /// The batch's index of a column of this table (nil when the batch does not name it).
    func index(of column: ColumnName) -> Int? { columns.firstIndex(of: column) }
}

extension RowChange {
    /// The cell of the batch column `index`, if the row carries it.
    func cell(_ index: Int?) -> Cell? {
        guard let index else { return nil }
        return cells.last { $0.column == index }
    }
}
