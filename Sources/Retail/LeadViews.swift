public import SQLite

/// SQL views over the replicated tables, for anyone querying a replica with `sqlite3`: they
/// count a duplicate lead's visits and sales for its canonical lead (see `DuplicateLeadRule`).
/// Views are not replicated; every replica the CLI touches gets them (`CREATE VIEW IF NOT EXISTS`).
///
/// - `lead_visits`: every visit with a lead; `lead` is the canonical lead it counts for.
/// - `lead_sales`: every sale with a lead; `lead` is the canonical lead it counts for.
/// - `lead_activity`: one row per canonical lead: `visits`, `sales` (lines), `sales_cents`,
///   its own and its duplicates'.
public enum LeadViews {
    static let names = ["lead_visits", "lead_sales", "lead_activity"]

    private static let definitions = """
        CREATE VIEW IF NOT EXISTS lead_visits AS
            SELECT v.id AS visit, COALESCE(l.canonical_id, v.lead) AS lead, v.lead AS recorded_lead, v.store, v.guide,
                   v.at_ms, v.duration_min, v.products, v.outcome
            FROM visits AS v LEFT JOIN leads AS l ON l.id = v.lead WHERE v.lead IS NOT NULL;
        CREATE VIEW IF NOT EXISTS lead_sales AS
            SELECT s.id AS sale, COALESCE(l.canonical_id, s.lead) AS lead, s.lead AS recorded_lead, s.store, s.guide,
                   s.sku, s.quantity, s.amount_cents, s.at_ms
            FROM sales AS s LEFT JOIN leads AS l ON l.id = s.lead WHERE s.lead IS NOT NULL;
        CREATE VIEW IF NOT EXISTS lead_activity AS
            SELECT l.id AS lead, l.store,
                   (SELECT count(*) FROM visits AS v
                    WHERE v.lead = l.id OR v.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS visits,
                   (SELECT count(*) FROM sales AS s
                    WHERE s.lead = l.id OR s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS sales,
                   (SELECT COALESCE(sum(s.amount_cents), 0) FROM sales AS s
                    WHERE s.lead = l.id OR s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS sales_cents
            FROM leads AS l WHERE l.canonical_id IS NULL OR l.canonical_id = l.id;
        """

    private static let presentSQL = "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN ('lead_visits', 'lead_sales', 'lead_activity')"

    /// Whether every view exists already (so a reader need not take the write lock).
    public static func arePresent(in database: Database) throws -> Bool {
        try database.fetchScalar(presentSQL)?.integerValue == Int64(names.count)
    }

    /// Creates the views that are missing; call inside a write transaction.
    public static func install(in database: Database) throws {
        try database.execute(definitions)
    }
}
