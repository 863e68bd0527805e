import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// The consolidated views against totals computed here, independently, from generated events.
final class RetailViewsTests: XCTestCase {
    private struct Sale { var store: String; var guide: String; var atMs: Int64; var quantity: Int64; var cents: Int64 }
    private struct Lead {
        var store: String; var guide: String; var stage: String; var score: Int64; var createdMs: Int64
        var firstResponseMs: Int64?; var dueMs: Int64; var duplicate: Bool
    }

    private static let regionOfStore = ["N1": "north", "N2": "north", "S1": "south"]
    private static let day: Int64 = 86_400_000
    private static let start: Int64 = 1_767_225_600_000   // 2026-01-01T00:00:00Z
    private let now = start + 20 * day

    private func column(_ name: String) throws -> ColumnName { try ColumnName(name) }

    private func makeReplica() throws -> Replica {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("views-\(UUID().uuidString).sqlite").path
        addTeardownBlock { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let replica = try Replica(path: path, schema: RetailSchema.all)
        try replica.write { tx in
            for (store, region) in Self.regionOfStore {
                try tx.insert(into: RetailSchema.stores.name, primaryKey: store, [try column("region"): .text(region)])
            }
        }
        return replica
    }

    private func view(_ replica: Replica, _ name: String, _ parameters: [(name: String, value: String)]) throws -> ViewTable {
        let query = try ReportQuery(view: name, parameters: parameters)
        return try RetailViews.run(query, from: replica, nowMilliseconds: now)
    }

    private func seed() -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["STORESYNC_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        print("RetailViewsTests seed \(seed) (replay with STORESYNC_SEED=\(seed))")
        return seed
    }

    func testSalesTotalsMatchTheEventsForEveryGroupingAndRange() throws {
        var random = SplitMix64(seed: seed())
        let replica = try makeReplica()
        let stores = Self.regionOfStore.keys.sorted()
        let sales = (0..<400).map { _ in
            Sale(store: stores.randomElement(using: &random) ?? "N1", guide: ["g1", "g2"].randomElement(using: &random) ?? "g1",
                 atMs: Self.start + Int64.random(in: 0..<(10 * Self.day), using: &random),
                 quantity: Int64.random(in: 1...5, using: &random), cents: Int64.random(in: 1...99_999, using: &random))
        }
        try replica.write { tx in
            for sale in sales {
                try tx.insert(into: RetailSchema.sales.name, primaryKey: UniqueID.make(), [
                    try column("store"): .text(sale.store), try column("guide"): .text(sale.guide),
                    try column("sku"): .text("K1"), try column("quantity"): .integer(sale.quantity),
                    try column("amount_cents"): .integer(sale.cents), try column("at_ms"): .integer(sale.atMs),
                ])
            }
        }
        func dayText(_ ms: Int64) -> String {
            let formatter = DateFormatter()
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM-dd"
            return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
        let groupings: [(String, (Sale) -> [SQLValue])] = [
            ("region", { [.text(Self.regionOfStore[$0.store] ?? "")] }),
            ("store", { [.text($0.store)] }),
            ("guide", { [.text($0.store), .text($0.guide)] }),
            ("day", { [.text(dayText($0.atMs))] }),
        ]
        for (from, to) in [(nil, nil), ("2026-01-03", "2026-01-05")] as [(String?, String?)] {
            let low = from.map { _ in Self.start + 2 * Self.day } ?? Int64.min
            let high = to.map { _ in Self.start + 5 * Self.day } ?? Int64.max
            let included = sales.filter { $0.atMs >= low && $0.atMs < high }
            for (grouping, key) in groupings {
                var expected: [[SQLValue]: (cents: Int64, units: Int64, orders: Int64)] = [:]
                for sale in included {
                    let total = expected[key(sale)] ?? (0, 0, 0)
                    expected[key(sale)] = (total.cents + sale.cents, total.units + sale.quantity, total.orders + 1)
                }
                var parameters = [(name: "by", value: grouping)]
                if let from, let to { parameters += [("from", from), ("to", to)] }
                let table = try view(replica, "sales", parameters)
                XCTAssertEqual(table.columns.suffix(3), ["revenue", "units", "orders"])
                XCTAssertEqual(table.rows.count, expected.count, "groups by \(grouping) \(from ?? "")")
                for row in table.rows {
                    let width = row.count - 3
                    let total = try XCTUnwrap(expected[Array(row[0..<width])], "unexpected group \(row)")
                    XCTAssertEqual(row[width], .text(RetailViews.decimal(cents: total.cents)))
                    XCTAssertEqual(row[width + 1], .integer(total.units))
                    XCTAssertEqual(row[width + 2], .integer(total.orders))
                }
            }
        }
    }

    func testRevenueIsExactDecimal() {
        XCTAssertEqual(RetailViews.decimal(cents: 0), "0.00")
        XCTAssertEqual(RetailViews.decimal(cents: 5), "0.05")
        XCTAssertEqual(RetailViews.decimal(cents: 123_456), "1234.56")
        XCTAssertEqual(RetailViews.decimal(cents: -1_005), "-10.05")
        XCTAssertEqual(RetailViews.decimal(cents: Int64.min), "-92233720368547758.08")
    }

    func testFunnelAndSLACountCanonicalLeadsOnly() throws {
        var random = SplitMix64(seed: seed())
        let replica = try makeReplica()
        let stages = ["reached", "needs-confirmed", "demo", "negotiation", "won", "lost"]
        let leads = (0..<300).map { _ -> Lead in
            let created = Self.start + Int64.random(in: 0..<(15 * Self.day), using: &random)
            let responded = Bool.random(using: &random)
            return Lead(store: Self.regionOfStore.keys.sorted().randomElement(using: &random) ?? "N1", guide: "g1",
                        stage: stages.randomElement(using: &random) ?? "reached", score: Int64.random(in: 0...100, using: &random),
                        createdMs: created,
                        firstResponseMs: responded ? created + Int64.random(in: 0..<(8 * Self.day), using: &random) : nil,
                        dueMs: created + Int64.random(in: 0..<(10 * Self.day), using: &random),
                        duplicate: Int.random(in: 0..<10, using: &random) == 0)
        }
        var canonicalKey = ""
        try replica.write { tx in
            for (index, lead) in leads.enumerated() {
                let key = UniqueID.make()
                if index == 0 { canonicalKey = key }
                let grade = lead.score >= 85 ? "A" : lead.score >= 60 ? "B" : "C"
                try tx.insert(into: RetailSchema.leads.name, primaryKey: key, [
                    try column("store"): .text(lead.store), try column("owner_guide"): .text(lead.guide),
                    try column("stage"): .text(lead.stage), try column("score"): .integer(lead.score), try column("grade"): .text(grade),
                    try column("created_ms"): .integer(lead.createdMs), try column("next_action_due_ms"): .integer(lead.dueMs),
                    try column("first_response_ms"): lead.firstResponseMs.map(SQLValue.integer) ?? .null,
                    try column("canonical_id"): lead.duplicate && index > 0 ? .text(canonicalKey) : .null,
                ])
            }
        }
        let canonical = leads.enumerated().filter { !$0.element.duplicate || $0.offset == 0 }.map(\.element)

        let funnel = try view(replica, "funnel", [("by", "store")])
        XCTAssertEqual(funnel.columns, ["store", "stage", "leads", "reached_at_least", "conversion_from_previous"])
        for store in Self.regionOfStore.keys {
            let mine = canonical.filter { $0.store == store }
            let rows = funnel.rows.filter { $0[0] == .text(store) }
            for (index, stage) in stages.enumerated() {
                let row = try XCTUnwrap(rows.first { $0[1] == .text(stage) }, "\(store) \(stage)")
                XCTAssertEqual(row[2], .integer(Int64(mine.filter { $0.stage == stage }.count)), "\(store) \(stage)")
                if stage != "lost" {
                    let later = Set(stages[index..<5])
                    let atLeast = mine.filter { later.contains($0.stage) || (index == 0 && $0.stage == "lost") }.count
                    XCTAssertEqual(row[3], .integer(Int64(atLeast)), "\(store) \(stage) reached at least")
                }
            }
        }

        let sla = try view(replica, "sla", [("by", "region")])
        XCTAssertEqual(sla.columns, ["region", "leads", "first_touched", "within_window", "within_window_share", "overdue"])
        let hour: Int64 = 3_600_000
        for region in ["north", "south"] {
            let mine = canonical.filter { Self.regionOfStore[$0.store] == region }
            let within = mine.filter { lead in
                guard let first = lead.firstResponseMs else { return false }
                let window = lead.score >= 85 ? 48 * hour : lead.score >= 60 ? 72 * hour : 7 * 24 * hour
                return first - lead.createdMs <= window
            }.count
            let overdue = mine.filter { !["won", "lost"].contains($0.stage) && $0.dueMs < now }.count
            let row = try XCTUnwrap(sla.rows.first { $0[0] == .text(region) })
            XCTAssertEqual(row[1], .integer(Int64(mine.count)))
            XCTAssertEqual(row[2], .integer(Int64(mine.filter { $0.firstResponseMs != nil }.count)))
            XCTAssertEqual(row[3], .integer(Int64(within)))
            XCTAssertEqual(row[4], .real(Double(within) / Double(mine.count)))
            XCTAssertEqual(row[5], .integer(Int64(overdue)))
        }
    }

    func testBadQueriesAreRefusedWithAReason() {
        for (view, parameters) in [("revenue", []), ("sales", [("by", "month")]), ("sales", [("from", "2026-02-30")]),
                                   ("sales", [("from", "2026-03-02"), ("to", "2026-03-01")]), ("sales", [("colour", "red")])]
            as [(String, [(name: String, value: String)])] {
            XCTAssertThrowsError(try ReportQuery(view: view, parameters: parameters), "\(view) \(parameters)") { error in
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
        XCTAssertEqual(try ReportQuery(view: "sales", parameters: [("from", "2026-01-03"), ("to", "2026-01-05")]).parameters.map(\.value),
                       ["store", "2026-01-03", "2026-01-05"])
    }

    /// Signals written in order on one replica have increasing versions, so the expected stock is
    /// the last stocktake plus the deltas written after it, computed here without the engine.
    func testStockListsPairsBelowThresholdWithThePromotionsTheyRaised() throws {
        var random = SplitMix64(seed: seed())
        let replica = try makeReplica()
        let skus = ["K1", "K2", "K3"]
        var expected: [String: Int64] = [:]
        var minimum: [String: Int64] = [:]
        try replica.write { tx in
            for store in Self.regionOfStore.keys.sorted() {
                for sku in skus {
                    let key = "\(store)/\(sku)"
                    minimum[key] = Int64.random(in: 2...6, using: &random)
                    try tx.insert(into: RetailSchema.thresholds.name, primaryKey: key, [
                        try column("store"): .text(store), try column("sku"): .text(sku), try column("min_quantity"): .integer(minimum[key] ?? 0),
                    ])
                }
            }
        }
        for _ in 0..<300 {
            let store = Self.regionOfStore.keys.sorted().randomElement(using: &random) ?? "N1"
            let sku = skus.randomElement(using: &random) ?? "K1"
            let key = "\(store)/\(sku)"
            let kind = ["sale", "receipt", "adjustment", "stocktake"].randomElement(using: &random) ?? "sale"
            let quantity: Int64 = switch kind {
            case "sale": -Int64.random(in: 1...3, using: &random)
            case "receipt": Int64.random(in: 1...5, using: &random)
            case "adjustment": Int64.random(in: -2...2, using: &random)
            default: Int64.random(in: 0...12, using: &random)
            }
            expected[key] = kind == "stocktake" ? quantity : (expected[key] ?? 0) + quantity
            try replica.write { tx in
                try tx.insert(into: RetailSchema.inventorySignals.name, primaryKey: UniqueID.make(), [
                    try column("store"): .text(store), try column("sku"): .text(sku), try column("kind"): .text(kind),
                    try column("quantity"): .integer(quantity), try column("at_ms"): .integer(Self.start),
                ])
            }
        }
        // Promotions raised by N1's K1: two suggestions of one crossing, and one of a second
        // crossing that carries the same ordinal (a late signal renumbered the history after
        // the first was issued): crossings count by their signal.
        try replica.write { tx in
            for (target, signal) in [("N2", "SIG-1"), ("S1", "SIG-1"), ("N2", "SIG-2")] {
                try tx.insert(into: RetailSchema.promotions.name, primaryKey: "P-\(target)-\(signal)", [
                    try column("source_store"): .text("N1"), try column("target_store"): .text(target), try column("sku"): .text("K1"),
                    try column("crossing"): .integer(1), try column("crossing_signal"): .text(signal),
                    try column("issued_ms"): .integer(Self.start + Self.day),
                ])
            }
        }

        let table = try view(replica, "stock", [])
        XCTAssertEqual(table.columns, ["region", "store", "sku", "stock", "safety_stock", "below", "crossings", "promotions"])
        var listed: [String: [SQLValue]] = [:]
        for row in table.rows { listed["\(row[1].textValue ?? "")/\(row[2].textValue ?? "")"] = row }
        for (key, threshold) in minimum {
            let stock = expected[key] ?? 0
            let promoted = key == "N1/K1"
            guard let row = listed[key] else {
                XCTAssertFalse(stock < threshold || promoted, "\(key) (stock \(stock), threshold \(threshold)) is missing")
                continue
            }
            XCTAssertEqual(row[3], .integer(stock), key)
            XCTAssertEqual(row[4], .integer(threshold), key)
            XCTAssertEqual(row[5], .text(stock < threshold ? "yes" : "no"), key)
            XCTAssertEqual(row[7], .integer(promoted ? 3 : 0), key)
        }
        XCTAssertEqual(listed["N1/K1"]?[6], .integer(2), "two crossing signals, both numbered 1")
        // Promotions outside the range do not count; the pair is listed only if it is below.
        let later = try view(replica, "stock", [("from", "2026-02-01")])
        XCTAssertFalse(later.rows.contains { $0[7] != .integer(0) })
    }
}
