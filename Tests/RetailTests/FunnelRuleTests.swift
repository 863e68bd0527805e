import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// The funnel rule on a hub: skips and moves back are corrected by compensations that flow
/// back to the terminals and are logged; concurrent won and lost are flagged; and hubs fed the
/// same batches in any order end byte-identical, versions included.
final class FunnelRuleTests: XCTestCase {
    private struct Scenario {
        var factory: ReplicaFactory
        var initial: Changeset
        var batches: [Changeset]
        var terminals: [Replica]
        var lead: String
        var closing: String
        /// Ends at negotiation; a later write moves it back and an earlier one raises it further.
        var climbing: String
        var hubClock: TestClock
    }

    /// Three terminals of store S1 start from the same three leads (L at reached, M at
    /// negotiation, N at needs-confirmed), then, offline: t1 moves L to demo, wins M and moves N
    /// to demo; t3 writes L straight to won from reached (a skip, by another tool) and moves N on
    /// to negotiation; t2 (latest) moves L only to needs-confirmed, loses M and writes N back to
    /// reached (by another tool).
    private func scenario() throws -> Scenario {
        let factory = try ReplicaFactory(self)
        let clocks = [TestClock(testEpoch + 1_000), TestClock(testEpoch + 1_000), TestClock(testEpoch + 1_000)]
        let terminals = try clocks.enumerated().map { try factory.open("t\($0.offset + 1)", clock: $0.element) }
        let (t1, t2, t3) = (terminals[0], terminals[1], terminals[2])
        let lead = try Leads.add(LeadDraft(customerName: "Li Mei", phone: "+86 138 0013 8000", score: 90), store: "S1", in: t1, now: clocks[0].nowMs)
        let closing = try Leads.add(LeadDraft(customerName: "Wang Wei", phone: "+86 139 0000 0001", score: 70), store: "S1", in: t1, now: clocks[0].nowMs)
        for stage in [FunnelStage.needsConfirmed, .demo, .negotiation] {
            _ = try Leads.move(closing, to: stage, store: "S1", in: t1, now: clocks[0].nowMs)
        }
        let climbing = try Leads.add(LeadDraft(customerName: "Zhao Min", phone: "+86 137 0000 0002"), store: "S1", in: t1, now: clocks[0].nowMs)
        _ = try Leads.move(climbing, to: .needsConfirmed, store: "S1", in: t1, now: clocks[0].nowMs)
        let initial = try t1.push()
        for terminal in [t2, t3] { _ = try terminal.apply(initial) }
        let mark = t1.latestSequence
        let marks = [t2.latestSequence, t3.latestSequence]

        clocks[0].advance(by: 10_000)
        _ = try Leads.move(lead, to: .needsConfirmed, store: "S1", in: t1, now: clocks[0].nowMs)
        _ = try Leads.move(lead, to: .demo, store: "S1", in: t1, now: clocks[0].nowMs)
        _ = try Leads.move(closing, to: .won, store: "S1", in: t1, now: clocks[0].nowMs)
        _ = try Leads.move(climbing, to: .demo, store: "S1", in: t1, now: clocks[0].nowMs)
        clocks[2].advance(by: 15_000)
        try t3.write { tx in
            try tx.update(RetailSchema.leads.name, primaryKey: lead, set: [column("stage"): .text("won"), column("previous_stage"): .text("reached")])
        }
        _ = try Leads.move(climbing, to: .demo, store: "S1", in: t3, now: clocks[2].nowMs)
        _ = try Leads.move(climbing, to: .negotiation, store: "S1", in: t3, now: clocks[2].nowMs)
        clocks[1].advance(by: 20_000)
        _ = try Leads.move(lead, to: .needsConfirmed, store: "S1", in: t2, now: clocks[1].nowMs)
        _ = try Leads.move(closing, to: .lost, store: "S1", in: t2, now: clocks[1].nowMs)
        try t2.write { tx in
            try tx.update(RetailSchema.leads.name, primaryKey: climbing,
                          set: [column("stage"): .text("reached"), column("previous_stage"): .text("needs-confirmed")])
        }
        let batches = [try t1.push(since: mark), try t2.push(since: marks[0]), try t3.push(since: marks[1])]
        return Scenario(factory: factory, initial: initial, batches: batches, terminals: terminals, lead: lead, closing: closing,
                        climbing: climbing, hubClock: TestClock(testEpoch + 3_600_000))
    }

    func testSkipsAndMovesBackAreCorrectedLoggedAndFlowBack() throws {
        let world = try scenario()
        let hub = try RulesHub(try world.factory.open("hub", clock: world.hubClock))
        try hub.push(world.initial)
        var outcome = RetailRules.Outcome()
        for batch in world.batches {
            let step = try hub.push(batch)
            outcome.stageCompensations += step.stageCompensations
            outcome.reviews += step.reviews
        }
        XCTAssertGreaterThan(outcome.stageCompensations, 0)
        XCTAssertEqual(try hub.replica.text("SELECT stage FROM leads WHERE id = ?", [.text(world.lead)]), "demo",
                       "the furthest valid stage wins over t2's older view and t3's skip")
        XCTAssertEqual(try hub.replica.text("SELECT stage FROM leads WHERE id = ?", [.text(world.closing)]), "won",
                       "a concurrent won and lost settle on won")
        XCTAssertEqual(try hub.replica.text("SELECT stage FROM leads WHERE id = ?", [.text(world.climbing)]), "negotiation",
                       "t2's later move back is corrected to the furthest stage, t3's")
        let reviews = try hub.replica.rows("SELECT subject_id, action, rule, store FROM rule_reviews ORDER BY action, subject_id")
        XCTAssertEqual(reviews, [
            [.text(world.lead), .text("stage_regress_refused"), .text("funnel"), .text("S1")],
            [.text(world.climbing), .text("stage_regress_refused"), .text("funnel"), .text("S1")],
            [.text(world.lead), .text("stage_skip_refused"), .text("funnel"), .text("S1")],
            [.text(world.closing), .text("won_lost_conflict"), .text("funnel"), .text("S1")],
        ].sorted { ($0[1].textValue ?? "", $0[0].textValue ?? "") < ($1[1].textValue ?? "", $1[0].textValue ?? "") })
        let details = try hub.replica.rows("SELECT detail FROM rule_reviews").compactMap { $0[0].textValue }
        XCTAssertFalse(details.contains { $0.contains("Li") || $0.contains("138") }, "reviews carry no personal data")

        // The corrections reach every terminal, which then moves on from the corrected stage.
        for terminal in world.terminals {
            _ = try terminal.apply(try hub.changes(for: terminal.id))
            XCTAssertEqual(try terminal.text("SELECT stage FROM leads WHERE id = ?", [.text(world.lead)]), "demo")
            XCTAssertEqual(try terminal.text("SELECT stage FROM leads WHERE id = ?", [.text(world.closing)]), "won")
        }
        let t2 = world.terminals[1]
        XCTAssertEqual(try Leads.move(world.lead, to: .negotiation, store: "S1", in: t2, now: world.hubClock.nowMs), .demo)
        try hub.push(try t2.push(since: 0))
        XCTAssertEqual(try hub.replica.text("SELECT stage FROM leads WHERE id = ?", [.text(world.lead)]), "negotiation",
                       "a valid step after the correction is accepted")
    }

    func testHubsFedTheSameBatchesInAnyOrderEndIdentical() throws {
        let world = try scenario()
        var reference: String?
        let orders = permutations(Array(world.batches.indices))
        for (index, order) in orders.enumerated() {
            let hub = try RulesHub(try world.factory.open("hub\(index)", clock: TestClock(world.hubClock.now + UInt64(index) * 7_919)))
            try hub.push(world.initial)
            for position in order { try hub.push(world.batches[position]) }
            let dump = try hub.replica.canonicalDump(includeVersions: true)
            if let reference {
                XCTAssert(dump == reference, "order \(order): \(firstDifference(dump, reference))")
            } else {
                reference = dump
            }
            // Idempotent under resync: every batch again changes nothing, not even the log.
            let sequence = hub.replica.latestSequence
            try hub.push([world.initial] + world.batches)
            XCTAssertEqual(hub.replica.latestSequence, sequence, "order \(order): a resync wrote something")
            XCTAssertEqual(try hub.replica.canonicalDump(includeVersions: true), dump)
        }
        // One group commit of everything gives the same result too.
        let grouped = try RulesHub(try world.factory.open("grouped", clock: TestClock(world.hubClock.now + 123_456)))
        try grouped.push([world.initial] + world.batches.reversed())
        XCTAssertEqual(try grouped.replica.canonicalDump(includeVersions: true), reference)
    }

    /// A regional hub and HQ both run the rules; HQ, fed what the regional hub relays, derives
    /// the same corrections and reviews and so writes nothing new.
    func testASecondHubRunningTheRulesOnRelayedDataWritesNothingNew() throws {
        let world = try scenario()
        let regional = try RulesHub(try world.factory.open("regional", clock: world.hubClock))
        try regional.push(world.initial)
        for batch in world.batches { try regional.push(batch) }
        let hq = try RulesHub(try world.factory.open("hq", clock: TestClock(world.hubClock.now + 65_537)))
        var cursor: UInt64 = 0
        while cursor < regional.replica.latestSequence {
            let batch = try regional.replica.changes(since: cursor, limit: 3)
            let outcome = try hq.push(batch)
            XCTAssertTrue(outcome.isEmpty, "HQ derives what the regional hub derived already: \(outcome)")
            cursor = batch.toSequence
        }
        XCTAssertEqual(try hq.replica.canonicalDump(includeVersions: true), try regional.replica.canonicalDump(includeVersions: true))
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
