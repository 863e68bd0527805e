import Foundation
import Retail
import SQLite
import SyncEngine

/// What the demo prints at the end: HQ's consolidated views and what the central rules did,
/// read from HQ's replica as an analyst would.
struct DemoReport {
    let hq: Replica
    let now: Int64

    func printAll() throws {
        try section("HQ: sales by region", view(.sales, .region))
        try section("HQ: sales by store", view(.sales, .store))
        try section("HQ: lead funnel, all stores", funnelTotals())
        try section("HQ: follow-up SLA by region", view(.sla, .region))
        try section("HQ: stock below safety threshold, and promotions raised", view(.stock, .store))
        try section("central rules: promotion suggestions", promotions())
        try section("central rules: review log", reviews())
    }

    private func section(_ title: String, _ table: ViewTable) throws {
        print(title)
        print(ReportFormat.table.render(table))
    }

    private func view(_ view: ReportQuery.View, _ grouping: ReportQuery.Grouping) throws -> ViewTable {
        let query = ReportQuery(view: view, grouping: grouping)
        return try RetailViews.run(query, from: hq, nowMilliseconds: now)
    }

    /// The funnel by region, folded into one chain-wide funnel.
    private func funnelTotals() throws -> ViewTable {
        let byRegion = try view(.funnel, .region)
        var order: [String] = []
        var leads: [String: Int64] = [:]
        var reached: [String: Int64] = [:]
        for row in byRegion.rows {
            guard let stage = row[1].textValue else { continue }
            if leads[stage] == nil { order.append(stage) }
            leads[stage, default: 0] += row[2].integerValue ?? 0
            reached[stage, default: 0] += row[3].integerValue ?? 0
        }
        var previous: Int64?
        let rows: [[SQLValue]] = order.map { stage in
            let atLeast = reached[stage] ?? 0
            let conversion: SQLValue = stage == "lost" || previous == nil || previous == 0
                ? .null : .real(Double(atLeast) / Double(previous ?? 1))
            if stage != "lost" { previous = atLeast }
            return [.text(stage), .integer(leads[stage] ?? 0), .integer(atLeast), conversion]
        }
        return ViewTable(columns: ["stage", "leads", "reached_at_least", "conversion_from_previous"], rows: rows)
    }

    private func promotions() throws -> ViewTable {
        let rows = try hq.read { database in
            try database.fetchAll("""
                SELECT source_store, sku, crossing, target_store, distance_m, stock_at_crossing, threshold
                FROM promotions ORDER BY source_store, sku, crossing, distance_m, target_store
                """)
        }
        return ViewTable(columns: ["low_store", "sku", "crossing", "suggested_to", "distance_m", "stock", "safety_stock"], rows: rows)
    }

    private func reviews() throws -> ViewTable {
        let rows = try hq.read { database in
            try database.fetchAll("SELECT rule, action, count(*) FROM rule_reviews GROUP BY rule, action ORDER BY rule, action")
        }
        return ViewTable(columns: ["rule", "action", "cases"], rows: rows)
    }
}
