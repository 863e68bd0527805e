public import SQLite

/// The rows of one consolidated view: what `storesync report` prints and VIEW_ROWS carries.
public struct ViewTable: Sendable, Hashable {
    public var columns: [String]
    public var rows: [[SQLValue]]

    public init(columns: [String], rows: [[SQLValue]]) {
        self.columns = columns
        self.rows = rows
    }
}

/// HQ's consolidated views, computed from the replicated tables of whatever replica runs them
/// (HQ sees every store, a regional hub its region).
///
/// Money stays exact: sums are integer cents in SQL and become decimal text (`"1234.50"`) here,
/// never floating point. Only canonical leads count (a duplicate merged by the central rules
/// points to its canonical lead and is left out). Days are UTC.
public enum RetailViews {
    /// The funnel stages a lead moves through, in order; `lost` can end any of them.
    static let progression = ["reached", "needs-confirmed", "demo", "negotiation", "won"]

    public static func run(_ query: ReportQuery, from source: any ReplicaReading, nowMilliseconds: Int64) throws -> ViewTable {
        switch query.view {
        case .sales: return try source.read { database in try sales(query, database) }
        case .funnel: return try source.read { database in try funnel(query, database) }
        case .sla: return try source.read { database in try sla(query, database, now: nowMilliseconds) }
        case .stock: return try StockView.run(query, from: source)
        }
    }

    /// The grouping columns of a view over a table aliased `t` with a store column and a time.
    struct GroupKey {
        var columns: [String]
        var expressions: [String]

        init(_ grouping: ReportQuery.Grouping, guideColumn: String, timeColumn: String) {
            switch grouping {
            case .region:
                columns = ["region"]
                expressions = ["st.region"]
            case .store:
                columns = ["store"]
                expressions = ["t.store"]
            case .guide:
                columns = ["store", "guide"]
                expressions = ["t.store", "t.\(guideColumn)"]
            case .day:
                columns = ["day"]
                expressions = ["strftime('%Y-%m-%d', t.\(timeColumn) / 1000, 'unixepoch')"]
            }
        }

        var select: String { expressions.joined(separator: ", ") }
    }

    /// Binds `?1` (first millisecond included) and `?2` (first excluded); NULL means unbounded,
    /// so rows without a time still count when no range is asked for.
    private static func range(_ query: ReportQuery) -> [SQLValue] {
        [query.fromMilliseconds.map(SQLValue.integer) ?? .null, query.untilMilliseconds.map(SQLValue.integer) ?? .null]
    }

    private static func inRange(_ column: String) -> String {
        "(?1 IS NULL OR t.\(column) >= ?1) AND (?2 IS NULL OR t.\(column) < ?2)"
    }

    // MARK: sales

    private static func sales(_ query: ReportQuery, _ database: Database) throws -> ViewTable {
        let key = GroupKey(query.grouping, guideColumn: "guide", timeColumn: "at_ms")
        // Overflow-safe, exact sums of the values the schema allows (see `ExactSum`); a line
        // whose amount or quantity is not one (held from before hubs validated) still counts
        // as an order, and adds nothing.
        let rows = try database.fetchAll("""
            SELECT \(key.select), \(ExactSum.sql("t.amount_cents", 0...RetailBounds.maximumAmountCents)),
                   \(ExactSum.sql("t.quantity", 1...RetailBounds.maximumQuantity)), COUNT(*)
            FROM sales AS t LEFT JOIN stores AS st ON st.id = t.store
            WHERE \(inRange("at_ms"))
            GROUP BY \(key.select) ORDER BY \(key.select)
            """, range(query))
        let width = key.columns.count
        return ViewTable(columns: key.columns + ["revenue", "units", "orders"], rows: rows.map { row in
            let revenue = ExactSum(high: row[width], low: row[width + 1])
            let units = ExactSum(high: row[width + 2], low: row[width + 3])
            return Array(row[0..<width]) + [.text(revenue.decimal(scale: 2)), units.value, row[width + 4]]
        })
    }

    /// Integer cents as exact decimal text: 123456 → "1234.56", -5 → "-0.05".
    public static func decimal(cents: Int64) -> String {
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return (cents < 0 ? "-" : "") + "\(magnitude / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }

    // MARK: funnel

    private static let canonicalLead = "(t.canonical_id IS NULL OR t.canonical_id = t.id)"

    private static func funnel(_ query: ReportQuery, _ database: Database) throws -> ViewTable {
        let key = GroupKey(query.grouping, guideColumn: "owner_guide", timeColumn: "created_ms")
        let counted = try database.fetchAll("""
            SELECT \(key.select), t.stage, COUNT(*)
            FROM leads AS t LEFT JOIN stores AS st ON st.id = t.store
            WHERE \(canonicalLead) AND \(inRange("created_ms"))
            GROUP BY \(key.select), t.stage ORDER BY \(key.select)
            """, range(query))
        let width = key.columns.count
        var groups: [[SQLValue]] = []
        var countsByGroup: [[SQLValue]: [String: Int64]] = [:]
        for row in counted {
            let group = Array(row[0..<width])
            if countsByGroup[group] == nil { groups.append(group) }
            countsByGroup[group, default: [:]][row[width].textValue ?? "", default: 0] += row[width + 1].integerValue ?? 0
        }
        var rows: [[SQLValue]] = []
        for group in groups {
            let counts = countsByGroup[group] ?? [:]
            // A lead at a stage has passed every earlier one: "reached at least" sums the later stages.
            var atLeast: [Int64] = Array(repeating: 0, count: progression.count)
            var running: Int64 = 0
            for index in progression.indices.reversed() {
                running += counts[progression[index]] ?? 0
                atLeast[index] = running
            }
            // Lost leads left somewhere after being reached; the log does not say where.
            atLeast[0] += counts["lost"] ?? 0
            for (index, stage) in progression.enumerated() {
                let conversion: SQLValue = index == 0 || atLeast[index - 1] == 0
                    ? .null : .real(Double(atLeast[index]) / Double(atLeast[index - 1]))
                rows.append(group + [.text(stage), .integer(counts[stage] ?? 0), .integer(atLeast[index]), conversion])
            }
            rows.append(group + [.text("lost"), .integer(counts["lost"] ?? 0), .integer(counts["lost"] ?? 0), .null])
            let other = counts.filter { !progression.contains($0.key) && $0.key != "lost" }.values.reduce(0, +)
            if other > 0 { rows.append(group + [.text("unknown"), .integer(other), .integer(other), .null]) }
        }
        return ViewTable(columns: key.columns + ["stage", "leads", "reached_at_least", "conversion_from_previous"], rows: rows)
    }

    // MARK: sla

    private static let hour: Int64 = 3_600_000

    private static func sla(_ query: ReportQuery, _ database: Database, now: Int64) throws -> ViewTable {
        let key = GroupKey(query.grouping, guideColumn: "owner_guide", timeColumn: "created_ms")
        let window = """
            CASE COALESCE(t.grade, CASE WHEN t.score >= 85 THEN 'A' WHEN t.score >= 60 THEN 'B' ELSE 'C' END)
                WHEN 'A' THEN \(48 * hour) WHEN 'B' THEN \(72 * hour) ELSE \(7 * 24 * hour) END
            """
        let rows = try database.fetchAll("""
            SELECT \(key.select), COUNT(*),
                   SUM(t.first_response_ms IS NOT NULL),
                   SUM(t.first_response_ms IS NOT NULL AND t.first_response_ms - t.created_ms <= \(window)),
                   SUM(COALESCE(t.stage, '') NOT IN ('won', 'lost') AND t.next_action_due_ms < ?3)
            FROM leads AS t LEFT JOIN stores AS st ON st.id = t.store
            WHERE \(canonicalLead) AND \(inRange("created_ms"))
            GROUP BY \(key.select) ORDER BY \(key.select)
            """, range(query) + [.integer(now)])
        let width = key.columns.count
        return ViewTable(columns: key.columns + ["leads", "first_touched", "within_window", "within_window_share", "overdue"],
                         rows: rows.map { row in
            let leads = row[width].integerValue ?? 0
            let within = row[width + 2].integerValue ?? 0
            return Array(row[0..<width]) + [row[width], row[width + 1], row[width + 2],
                                            leads == 0 ? .null : .real(Double(within) / Double(leads)), row[width + 3]]
        })
    }
}
