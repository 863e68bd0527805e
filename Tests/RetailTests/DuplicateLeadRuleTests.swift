import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// Leads created offline for the same customer (same normalised phone, same store) become one:
/// the earliest by version is canonical, the others point to it, their activity counts for it.
final class DuplicateLeadRuleTests: XCTestCase {
    private struct Scenario {
        var factory: ReplicaFactory
        var batches: [Changeset]
        var leads: [String]
        var hubClock: TestClock
    }

    /// Four terminals: three of store S1 enter the same customer with differently formatted
    /// phones (t2's clock is earliest), one of store S2 enters the same phone for its own customer.
    private func scenario() throws -> Scenario {
        let factory = try ReplicaFactory(self)
        let offsets: [UInt64] = [300, 100, 500, 50]
        let stores = ["S1", "S1", "S1", "S2"]
        let phones = ["+86 138 0013 8000", "0086 (138) 0013-8000", "+8613800138000", "+86 138 0013 8000"]
        var batches: [Changeset] = []
        var leads: [String] = []
        for index in 0..<4 {
            let clock = TestClock(testEpoch + offsets[index])
            let terminal = try factory.open("t\(index)", clock: clock)
            let lead = try Leads.add(LeadDraft(customerName: "Customer", phone: phones[index], score: 50), store: stores[index],
                                     in: terminal, now: clock.nowMs)
            clock.advance(by: 1_000)
            if index == 0 {
                _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 1, amountCents: 1_999, lead: lead, store: "S1",
                                                 in: terminal, now: clock.nowMs)
            }
            if index == 2 {
                _ = try FieldActivity.logVisit(VisitDraft(guide: "G3", lead: lead, durationMinutes: 15), store: "S1", in: terminal, now: clock.nowMs)
            }
            batches.append(try terminal.push())
            leads.append(lead)
        }
        return Scenario(factory: factory, batches: batches, leads: leads, hubClock: TestClock(testEpoch + 3_600_000))
    }

    func testTheEarliestLeadIsCanonicalAndTheOthersCountForIt() throws {
        let world = try scenario()
        let hub = try RulesHub(try world.factory.open("hub", clock: world.hubClock))
        for batch in world.batches { try hub.push(batch) }
        let links = try hub.replica.rows("SELECT id, canonical_id FROM leads ORDER BY id")
        let canonicalOf = Dictionary(uniqueKeysWithValues: links.map { ($0[0].textValue ?? "", $0[1].textValue) })
        let canonical = world.leads[1]
        XCTAssertEqual(canonicalOf[canonical] ?? "unset", nil, "t2's lead started first by version: it is canonical")
        XCTAssertEqual(canonicalOf[world.leads[0]], canonical)
        XCTAssertEqual(canonicalOf[world.leads[2]], canonical)
        XCTAssertEqual(canonicalOf[world.leads[3]] ?? "unset", nil, "the same phone in another store is another customer")

        let activity = try hub.replica.rows("SELECT lead, visits, sales, sales_cents FROM lead_activity WHERE store = 'S1'")
        XCTAssertEqual(activity, [[.text(canonical), .integer(1), .integer(1), .integer(1_999)]],
                       "the duplicates' visit and sale count for the canonical lead, which alone is listed")
        let listed = try Leads.list(store: "S1", in: hub.replica)
        let summary = try XCTUnwrap(listed.first { $0.id == canonical })
        XCTAssertEqual([summary.visits, summary.sales, summary.salesCents], [1, 1, 1_999])
        XCTAssertEqual(listed.filter { $0.canonicalID == canonical }.count, 2)
        let reviews = try hub.replica.rows("SELECT subject_id, action FROM rule_reviews ORDER BY subject_id")
        XCTAssertEqual(reviews, [world.leads[0], world.leads[2]].sorted().map { [.text($0), .text("duplicate_lead")] })
    }

    func testEveryArrivalOrderGivesTheSameLinksAndVersions() throws {
        let world = try scenario()
        var reference: String?
        var index = 0
        for order in permutations(Array(world.batches.indices)) {
            let hub = try RulesHub(try world.factory.open("hub\(index)", clock: TestClock(world.hubClock.now + UInt64(index) * 7_919)))
            index += 1
            for position in order { try hub.push(world.batches[position]) }
            let dump = try hub.replica.canonicalDump(includeVersions: true)
            if let reference {
                XCTAssert(dump == reference, "order \(order): \(firstDifference(dump, reference))")
            } else {
                reference = dump
            }
        }
    }

    func testAHubRestartAndAResyncChangeNothing() throws {
        let world = try scenario()
        let path = "restarted"
        var hub: RulesHub? = try RulesHub(try world.factory.open(path, clock: world.hubClock))
        try hub?.push(Array(world.batches.prefix(2)))
        hub = nil
        let reopened = try RulesHub(try world.factory.open(path, clock: world.hubClock))
        try reopened.push(Array(world.batches.suffix(2)))
        let dump = try reopened.replica.canonicalDump(includeVersions: true)
        let sequence = reopened.replica.latestSequence
        try reopened.push(world.batches)
        XCTAssertEqual(reopened.replica.latestSequence, sequence)

        let straight = try RulesHub(try world.factory.open("straight", clock: TestClock(world.hubClock.now + 31_337)))
        try straight.push(world.batches)
        XCTAssertEqual(dump, try straight.replica.canonicalDump(includeVersions: true))
        XCTAssertEqual(try reopened.replica.count("SELECT count(*) FROM rule_reviews"), 2)
    }

    /// A phone corrected later moves a lead between groups: it joins the group of its new phone,
    /// and when it was the canonical lead of its old group, the others there re-link.
    func testAPhoneChangeMovesALeadBetweenGroups() throws {
        let factory = try ReplicaFactory(self)
        let clock = TestClock(testEpoch)
        let terminal = try factory.open("t", clock: clock)
        let hub = try RulesHub(try factory.open("hub", clock: TestClock(testEpoch + 3_600_000)))
        func add(_ phone: String) throws -> String {
            clock.advance(by: 1_000)
            return try Leads.add(LeadDraft(customerName: "Customer", phone: phone), store: "S1", in: terminal, now: clock.nowMs)
        }
        let first = try add("+86 138 0000 0001")
        let second = try add("+86 138 0000 0001")
        let third = try add("+86 138 0000 0001")
        let other = try add("+86 139 0000 0009")
        var mark: UInt64 = 0
        func sync() throws {
            try hub.push(try terminal.push(since: mark))
            mark = terminal.latestSequence
        }
        func links() throws -> [String: String?] {
            Dictionary(uniqueKeysWithValues: try hub.replica.rows("SELECT id, canonical_id FROM leads").map { ($0[0].textValue ?? "", $0[1].textValue) })
        }
        try sync()
        XCTAssertEqual(try links(), [first: nil, second: first, third: first, other: nil])

        // The canonical lead's phone was mistyped: it joins `other`'s group, where its life
        // (created before `other`) makes it canonical; its old group re-links to second.
        clock.advance(by: 1_000)
        try Leads.update(first, LeadChanges(phone: "+86 139 0000 0009"), store: "S1", in: terminal)
        try sync()
        XCTAssertEqual(try links(), [first: nil, second: nil, third: second, other: first])
        XCTAssertEqual(try hub.replica.count("SELECT count(*) FROM rule_reviews WHERE action = 'duplicate_lead'"), 3,
                       "second and third were found duplicates, then other")
    }

    private func permutations(_ items: [Int]) -> [[Int]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { index -> [[Int]] in
            var rest = items
            let first = rest.remove(at: index)
            return permutations(rest).map { [first] + $0 }
        }
    }
}
