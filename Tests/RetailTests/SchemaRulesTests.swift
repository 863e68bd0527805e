import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// The application schema against the engine schema, and the changeset validator against the
/// hostile rows found by probing a hub (issue 11): each is refused with table, column and
/// reason, never its value; honest rows, the central rules' rows included, pass.
final class SchemaRulesTests: XCTestCase {
    private let origin = ReplicaID.random()
    private var version: Version { Version(hlc: HLCTimestamp(milliseconds: testEpoch, counter: 1), origin: origin) }

    /// A one-row changeset of `table` carrying exactly `values` (in the given order).
    private func changeset(_ table: TableSchema, key: String = UniqueID.make(milliseconds: testEpoch),
                           _ values: [(String, Value)]) -> Changeset {
        let columns = values.map { column($0.0) }
        let cells = values.enumerated().map { Cell(column: $0.offset, value: $0.element.1, version: version) }
        let row = RowChange(primaryKey: key, causalLength: 1, lifeVersion: version, cells: cells)
        return Changeset(source: origin, fromSequence: 0, toSequence: 1,
                         tables: [TableChanges(table: table.name, columns: columns, rows: [row])])
    }

    private func sale(amount: Value, quantity: Value) -> Changeset {
        changeset(RetailSchema.sales, [("store", .text("S1")), ("guide", .text("G1")), ("sku", .text("K1")), ("quantity", quantity),
                                       ("amount_cents", amount), ("at_ms", .integer(Int64(testEpoch))), ("lead", .null)])
    }

    private func lead(_ overrides: [String: Value] = [:]) -> Changeset {
        var values: [(String, Value)] = [
            ("store", .text("S1")), ("owner_guide", .text("G1")), ("customer_name", .text("Li Mei")), ("phone", .text("+86 138 0013 8000")),
            ("phone_normalized", .text("+8613800138000")), ("source", .text("walk-in")), ("score", .integer(90)), ("grade", .text("A")),
            ("stage", .text("reached")), ("previous_stage", .null), ("created_ms", .integer(Int64(testEpoch))), ("last_touch_ms", .null),
            ("next_action_due_ms", .integer(Int64(testEpoch) + 48 * 3_600_000)), ("first_response_ms", .null), ("canonical_id", .null),
        ]
        for index in values.indices { if let value = overrides[values[index].0] { values[index].1 = value } }
        return changeset(RetailSchema.leads, values)
    }

    /// The violation `changeset` raises; fails the test when it passes.
    private func violation(_ changeset: Changeset, file: StaticString = #filePath, line: UInt = #line) -> SchemaViolation? {
        do {
            try ChangesetValidator.check(changeset)
            XCTFail("the changeset was accepted", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func testRulesListEveryColumnOfTheEngineSchemaWithAMatchingType() {
        XCTAssertEqual(RetailSchemaRules.all.map(\.name), RetailSchema.all.map(\.name))
        for rules in RetailSchemaRules.all {
            XCTAssertEqual(rules.schema, RetailSchema.all.first { $0.name == rules.name })
            for (rule, definition) in zip(rules.columns, rules.schema.columns) {
                XCTAssertEqual(rule.name, definition.name)
                let expected: [StorageClass]
                switch definition.type {
                case .integer: expected = [.integer]
                case .real: expected = [.real, .integer]
                case .text: expected = [.text]
                case .blob: expected = [.blob]
                }
                XCTAssertEqual(rule.rule.storageClasses, expected, "\(rules.name).\(rule.name)")
            }
        }
    }

    func testHostileSalesAreRefusedNamingTableColumnAndReason() throws {
        let overflow = violation(sale(amount: .integer(.max), quantity: .integer(-5)))
        XCTAssertEqual(overflow?.table, "sales")
        XCTAssertEqual(overflow?.column, "quantity")
        XCTAssertEqual(overflow?.reason, .outOfRange("1 … 10^9"))
        XCTAssertEqual(violation(sale(amount: .integer(.max), quantity: .integer(5)))?.reason, .outOfRange("0 … 10^11"))

        let notANumber = violation(sale(amount: .text("not a number"), quantity: .integer(2)))
        XCTAssertEqual(notANumber?.column, "amount_cents")
        XCTAssertEqual(notANumber?.reason, .wrongType(expected: [.integer], got: .text))
        XCTAssertFalse(notANumber?.description.contains("not a number") ?? true, "the value is echoed")
        XCTAssertEqual(violation(sale(amount: .integer(100), quantity: .real(2.5)))?.reason, .wrongType(expected: [.integer], got: .real))
        // SQLite's INTEGER affinity would store the text '12' as 12: the class is checked exactly.
        XCTAssertEqual(violation(sale(amount: .text("12"), quantity: .integer(1)))?.reason, .wrongType(expected: [.integer], got: .text))
        XCTAssertNoThrow(try ChangesetValidator.check(sale(amount: .integer(RetailBounds.maximumAmountCents), quantity: .integer(1))))
    }

    func testAHugeNameIsRefusedWithoutBeingQuoted() throws {
        let name = String(repeating: "Zhang San ", count: 4 * 1024 * 1024 / 10)
        let refused = violation(lead(["customer_name": .text(name)]))
        XCTAssertEqual(refused?.column, "customer_name")
        XCTAssertEqual(refused?.reason, .tooLong(maxBytes: 800))
        XCTAssertFalse(refused?.description.contains("Zhang") ?? true)
        XCTAssertLessThan(refused?.description.utf8.count ?? .max, 200)
    }

    func testALeadMissingRequiredColumnsIsRefused() throws {
        // The probe's lead: 3 of its 15 columns.
        let partial = changeset(RetailSchema.leads, [("store", .text("S1")), ("customer_name", .text("Li Mei")), ("phone", .text("138 0013 8000"))])
        let refused = violation(partial)
        XCTAssertEqual(refused?.reason, .missing)
        XCTAssertEqual(refused?.column, "grade")
        XCTAssertEqual(violation(lead(["stage": .null]))?.reason, .null)
        XCTAssertNoThrow(try ChangesetValidator.check(lead()))
        // Personal data may be erased (NULL) and the row still replicates.
        XCTAssertNoThrow(try ChangesetValidator.check(lead(["customer_name": .null, "phone": .null, "phone_normalized": .null])))
    }

    func testEveryKindOfValueIsChecked() throws {
        let cases: [(String, [String: Value], String, SchemaViolation.Reason)] = [
            ("stage outside the funnel", ["stage": .text("needs_confirmed")], "stage", .badFormat(expected: TextFormat.oneOf(FunnelStage.allCases.map(\.rawValue)).specification)),
            ("stage as an integer", ["stage": .integer(3)], "stage", .wrongType(expected: [.text], got: .integer)),
            ("score above 100", ["score": .integer(101)], "score", .outOfRange("0 … 100")),
            ("grade D", ["grade": .text("D")], "grade", .badFormat(expected: "one of `A`, `B`, `C`")),
            ("a store id with a space", ["store": .text("S 1")], "store", .badFormat(expected: "identifier")),
            ("an empty owner", ["owner_guide": .text("")], "owner_guide", .empty),
            ("a newline in a name", ["customer_name": .text("Li\nMei")], "customer_name", .badFormat(expected: "line ≤ 800 bytes")),
            ("letters in a phone", ["phone": .text("call me")], "phone", .badFormat(expected: "phone ≤ 64 bytes")),
            ("a short normalised phone", ["phone_normalized": .text("+12345")], "phone_normalized", .badFormat(expected: "normalised phone")),
            ("a negative time", ["created_ms": .integer(-1)], "created_ms", .outOfRange("0 … 2^48-1")),
            ("a canonical id that is no key", ["canonical_id": .text("L1")], "canonical_id", .badFormat(expected: "ULID")),
            ("a blob", ["source": .blob([1, 2])], "source", .wrongType(expected: [.text], got: .blob)),
        ]
        for (name, overrides, column, reason) in cases {
            let refused = violation(lead(overrides))
            XCTAssertEqual(refused?.column, column, name)
            XCTAssertEqual(refused?.reason, reason, name)
        }
        let store: ([(String, Value)]) -> Changeset = { self.changeset(RetailSchema.stores, key: "S1", $0) }
        XCTAssertEqual(violation(store([("region", .text("east")), ("latitude", .real(.nan)), ("longitude", .real(0))]))?.reason, .notFinite)
        XCTAssertEqual(violation(store([("region", .text("east")), ("latitude", .real(12)), ("longitude", .integer(181))]))?.reason,
                       .outOfRange("-180 … 180"))
        XCTAssertNoThrow(try ChangesetValidator.check(store([("region", .text("east")), ("latitude", .integer(31)), ("longitude", .real(121.5))])))
        // Keys: a device key is a ULID, a threshold's is store/sku, a rule's row a derived key.
        XCTAssertEqual(violation(changeset(RetailSchema.sales, key: "1", []))?.column, "id")
        let threshold: (String) -> Changeset = {
            self.changeset(RetailSchema.thresholds, key: $0, [("store", .text("S1")), ("sku", .text("K1")), ("min_quantity", .integer(3))])
        }
        XCTAssertNoThrow(try ChangesetValidator.check(threshold("S1/K1")))
        XCTAssertEqual(violation(threshold("S1/K1/x"))?.reason, .badFormat(expected: "identifier/identifier"))
        XCTAssertEqual(violation(changeset(RetailSchema.promotions, key: "P-XYZ", []))?.reason, .badFormat(expected: "`P-` + 32 hex"))
    }

    func testTombstonesNeedNoColumnsAndUnknownTablesAreLeftToTheEngine() throws {
        var tombstone = changeset(RetailSchema.leads, [])
        tombstone.tables[0].rows[0].causalLength = 2
        XCTAssertNoThrow(try ChangesetValidator.check(tombstone))
        var foreign = sale(amount: .text("x"), quantity: .text("y"))
        foreign.tables[0].table = try TableName("not_retail")
        XCTAssertNoThrow(try ChangesetValidator.check(foreign))
    }

    /// Everything a rules hub holds after terminals' work and the rules' reactions (stage
    /// compensations, reviews, duplicate links, promotions) passes: a regional hub's relay to
    /// HQ is never refused for rows the software itself wrote.
    func testWhatHonestTerminalsAndTheCentralRulesWritePassesTheSchema() throws {
        let factory = try ReplicaFactory(self)
        // The first of a few fixed histories whose signals raise promotions.
        var promoted: RulesHub?
        for seed: UInt64 in 1...20 {
            let history = try PromotionHistory(seed: seed, factory: try ReplicaFactory(self))
            let candidate = try RulesHub(try factory.open("hub-\(seed)", clock: TestClock(testEpoch + 3_600_000)))
            try candidate.push(history.reference)
            for terminal in history.terminals { try candidate.push(try terminal.push()) }
            if try candidate.replica.count("SELECT count(*) FROM promotions") > 0 {
                promoted = candidate
                break
            }
        }
        let hub = try XCTUnwrap(promoted, "no history raised a promotion")

        let clock = TestClock(testEpoch + 1_000)
        let a = try factory.open("a", clock: clock), b = try factory.open("b", clock: clock)
        let first = try Leads.add(LeadDraft(customerName: "Li Mei", phone: "+86 138 0013 8000", source: "walk-in", score: 70, ownerGuide: "G1"),
                                  store: "E1", in: a, now: clock.nowMs)
        clock.advance(by: 1_000)
        _ = try Leads.add(LeadDraft(customerName: "Li M.", phone: "0086 138-0013-8000"), store: "E1", in: b, now: clock.nowMs)
        _ = try FieldActivity.logVisit(VisitDraft(guide: "G1", lead: first, customerName: "Li Mei", durationMinutes: 20,
                                                  products: ["K1", "K2"], outcome: "interested"), store: "E1", in: a, now: clock.nowMs)
        _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 2, amountCents: 19_999, lead: first, store: "E1", in: a, now: clock.nowMs)
        try Leads.update(first, LeadChanges(score: 90), store: "E1", in: a)
        _ = try Leads.move(first, to: .needsConfirmed, store: "E1", in: a, now: clock.nowMs)
        try hub.push(try a.push())
        _ = try b.apply(try a.push())
        try b.write { tx in  // another tool skips from reached to demo: the rules compensate and log it
            try tx.update(RetailSchema.leads.name, primaryKey: first, set: [column("stage"): .text("demo"), column("previous_stage"): .text("reached")])
        }
        try hub.push([try b.push()])

        let everything = try hub.replica.changes(since: 0)
        XCTAssertGreaterThan(try hub.replica.count("SELECT count(*) FROM rule_reviews"), 0, "no review was written")
        XCTAssertGreaterThan(try hub.replica.count("SELECT count(*) FROM leads WHERE canonical_id IS NOT NULL"), 0, "no duplicate was linked")
        XCTAssertNoThrow(try ChangesetValidator.check(everything))
    }
}
