public import SQLite

/// SQL views over the replicated tables, for anyone querying a replica with `sqlite3`: they
/// count a duplicate lead's visits and sales for its canonical lead (see `DuplicateLeadRule`).
/// Views are not replicated; every replica the CLI touches gets them (`CREATE VIEW IF NOT EXISTS`).
///
/// - `lead_visits`: every visit with a lead; `lead` is the canonical lead it counts for.
/// - `lead_sales`: every sale with a lead; `lead` is the canonical lead it counts for.
/// - `lead_activity`: one row per canonical lead: `visits`, `sales` (lines), `sales_cents`,
///   its own and its duplicates'.
///
/// Views never fail on what a replica holds: `sales_cents` adds only amounts the schema allows
/// (an INTEGER from 0 to 10^11) with `total()`, which cannot raise "integer overflow" as `sum()`
/// does, and is exact far beyond any one lead's sales (2^53 cents).
public enum LeadViews {
    static let names = ["lead_visits", "lead_sales", "lead_activity"]

    /// `amount_cents` of the sales row aliased `alias` when the schema allows it, else NULL.
    static func validAmount(_ alias: String) -> String {
        let column = "\(alias).amount_cents"
        return "CASE WHEN typeof(\(column)) = 'integer' AND \(column) BETWEEN 0 AND \(RetailBounds.maximumAmountCents) THEN \(column) END"
    }

    /// Bumped with every change of the definitions: replicas holding older ones get them replaced.
    private static let marker = "/* lead views 2 */"

    private static let definitions = """
        DROP VIEW IF EXISTS lead_visits;
        DROP VIEW IF EXISTS lead_sales;
        DROP VIEW IF EXISTS lead_activity;
        CREATE VIEW lead_visits AS \(marker)
            SELECT v.id AS visit, COALESCE(l.canonical_id, v.lead) AS lead, v.lead AS recorded_lead, v.store, v.guide,
                   v.at_ms, v.duration_min, v.products, v.outcome
            FROM visits AS v LEFT JOIN leads AS l ON l.id = v.lead WHERE v.lead IS NOT NULL;
        CREATE VIEW lead_sales AS \(marker)
            SELECT s.id AS sale, COALESCE(l.canonical_id, s.lead) AS lead, s.lead AS recorded_lead, s.store, s.guide,
                   s.sku, s.quantity, s.amount_cents, s.at_ms
            FROM sales AS s LEFT JOIN leads AS l ON l.id = s.lead WHERE s.lead IS NOT NULL;
        CREATE VIEW lead_activity AS \(marker)
            SELECT l.id AS lead, l.store,
                   (SELECT count(*) FROM visits AS v
                    WHERE v.lead = l.id OR v.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS visits,
                   (SELECT count(*) FROM sales AS s
                    WHERE s.lead = l.id OR s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS sales,
                   (SELECT CAST(total(\(validAmount("s"))) AS INTEGER) FROM sales AS s
                    WHERE s.lead = l.id OR s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)) AS sales_cents
            FROM leads AS l WHERE l.canonical_id IS NULL OR l.canonical_id = l.id;
        """

    private static let presentSQL = """
        SELECT count(*) FROM sqlite_master
        WHERE type = 'view' AND name IN ('lead_visits', 'lead_sales', 'lead_activity') AND instr(sql, ?) > 0
        """

    /// Whether every view exists already, as this version defines it (so a reader need not
    /// take the write lock).
    public static func arePresent(in database: Database) throws -> Bool {
        try database.fetchScalar(presentSQL, [.text(marker)])?.integerValue == Int64(names.count)
    }

    /// Creates the views, replacing older definitions; call inside a write transaction.
    public static func install(in database: Database) throws {
        // Replacing views changes the schema every connection sees: only when they are out of date.
        if try arePresent(in: database) { return }
        try database.execute(definitions)
    }
}
