import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// Views never fail on data a replica holds: a replica made by an older version (or fed by a
/// hub that did not validate) may hold any value in any column. Every view answers, and sums
/// count only the values the schema allows, exactly.
final class ViewRobustnessTests: XCTestCase {
    private let now = Int64(testEpoch) + 86_400_000

    /// A replica holding two honest sales of S1 and every kind of hostile row, written straight
    /// into its file (the engine's tables and, for some, SQL under the engine).
    private func hostileReplica() throws -> Replica {
        let factory = try ReplicaFactory(self)
        let replica = try factory.open("old", clock: TestClock(testEpoch))
        try ReferenceData.setStore(id: "S1", region: "east", latitude: 31, longitude: 121, name: nil, in: replica)
        try ReferenceData.setStore(id: "S2", region: "east", latitude: 31.1, longitude: 121.1, name: nil, in: replica)
        _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 2, amountCents: 1_000, lead: nil, store: "S1", in: replica, now: Int64(testEpoch))
        _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 1, amountCents: 250, lead: nil, store: "S1", in: replica, now: Int64(testEpoch))
        try ReferenceData.setThreshold(store: "S1", sku: "K1", minimum: 5, in: replica)
        let at = Value.integer(Int64(testEpoch))
        let sales: [(Value, Value, Value)] = [
            (.integer(.max), .integer(-5), at), (.integer(.max), .integer(.max), at), (.text("not a number"), .real(2.5), at),
            (.integer(.min), .integer(.min), at), (.real(1e300), .text("x"), .text("yesterday")), (.integer(5), .integer(1), .integer(.max)),
        ]
        try replica.write { tx in
            for (amount, quantity, time) in sales {
                try tx.insert(into: RetailSchema.sales.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("guide"): .text("G1"), column("sku"): .text("K1"),
                    column("quantity"): quantity, column("amount_cents"): amount, column("at_ms"): time,
                ])
            }
            for (kind, quantity) in [("sale", Value.integer(.max)), ("sale", .integer(.max)), ("receipt", .text("x")), ("weird", .integer(3))] {
                try tx.insert(into: RetailSchema.inventorySignals.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("sku"): .text("K1"), column("kind"): .text(kind), column("quantity"): quantity,
                    column("at_ms"): at,
                ])
            }
            try tx.insert(into: RetailSchema.leads.name, primaryKey: "L-1", [
                column("store"): .text("S1"), column("stage"): .text("bogus"), column("score"): .text("x"),
                column("created_ms"): .integer(.max), column("first_response_ms"): .integer(.min), column("next_action_due_ms"): .text("soon"),
            ])
            try tx.insert(into: RetailSchema.leads.name, primaryKey: "L-2", [column("store"): .integer(7), column("grade"): .real(.nan)])
            try tx.insert(into: RetailSchema.thresholds.name, primaryKey: "S2/K1", [
                column("store"): .text("S2"), column("sku"): .text("K1"), column("min_quantity"): .integer(.max),
            ])
            try tx.insert(into: RetailSchema.promotions.name, primaryKey: "P-x", [
                column("source_store"): .text("S1"), column("sku"): .text("K1"), column("issued_ms"): .text("x"),
            ])
        }
        // Under the engine: a sale line only SQL ever wrote.
        try replica.write { tx in
            try tx.database.execute("INSERT INTO sales (id, store, amount_cents, quantity, at_ms) VALUES ('raw', 'S2', 9223372036854775807, 9223372036854775807, 0)")
        }
        return replica
    }

    func testEveryViewAnswersOnHostileRows() throws {
        let replica = try hostileReplica()
        for view in ReportQuery.View.allCases {
            for grouping in ReportQuery.Grouping.allCases {
                for range in [[], [(name: "from", value: "2026-01-01"), (name: "to", value: "2026-01-02")]] {
                    let query = try ReportQuery(view: view.rawValue, parameters: [(name: "by", value: grouping.rawValue)] + range)
                    XCTAssertNoThrow(try RetailViews.run(query, from: replica, nowMilliseconds: now), "\(view) by \(grouping) \(range)")
                }
            }
        }
        let byStore = try RetailViews.run(ReportQuery(view: .sales, grouping: .store), from: replica, nowMilliseconds: now)
        XCTAssertEqual(byStore.columns, ["store", "revenue", "units", "orders"])
        // Only the honest lines and the one well-formed hostile line (5 cents, 1 unit, time out of range) add up.
        XCTAssertEqual(byStore.rows.first { $0[0] == .text("S1") }, [.text("S1"), .text("12.55"), .integer(4), .integer(8)])
        XCTAssertEqual(byStore.rows.first { $0[0] == .text("S2") }, [.text("S2"), .text("0.00"), .integer(0), .integer(1)])

        XCTAssertNoThrow(try Leads.list(store: "S1", in: replica))
        XCTAssertNoThrow(try StockLedger.levels(in: replica, store: "S1"))
        try replica.write { tx in try LeadViews.install(in: tx.database) }
        XCTAssertNoThrow(try replica.rows("SELECT * FROM lead_activity"))
        XCTAssertNoThrow(try replica.rows("SELECT * FROM lead_sales"))
    }

    /// Sums past 64 bits stay exact (they cannot happen within the schema's bounds short of
    /// 92 million maximal lines in one group, but the arithmetic must not wrap or trap).
    func testLargeTotalsAreExact() throws {
        let factory = try ReplicaFactory(self)
        let replica = try factory.open("big", clock: TestClock(testEpoch))
        try replica.write { tx in
            for _ in 0..<3 {
                try tx.insert(into: RetailSchema.sales.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("guide"): .text("G1"), column("sku"): .text("K1"),
                    column("quantity"): .integer(RetailBounds.maximumQuantity), column("amount_cents"): .integer(RetailBounds.maximumAmountCents - 1),
                    column("at_ms"): .integer(Int64(testEpoch)),
                ])
            }
        }
        let table = try RetailViews.run(ReportQuery(view: .sales, grouping: .store), from: replica, nowMilliseconds: now)
        XCTAssertEqual(table.rows, [[.text("S1"), .text("2999999999.97"), .integer(3 * RetailBounds.maximumQuantity), .integer(3)]])
    }
}
