import Foundation
import Hub
import Logging
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

final class HubScopeTests: XCTestCase {
    private func makeFixture() throws -> HubFixture {
        try HubFixture(scopes: StoreScopePolicy(knownStores: ["S1", "S2"])) { $0.maxBatchCells = 40 }
    }

    private func sync(_ fixture: HubFixture, _ terminal: Replica, store: String) throws -> SyncReport {
        try SyncClient(replica: terminal, options: fixture.options(store: store), logger: fixture.logger).syncOnce()
    }

    private func writeLeads(_ replica: Replica, store: String, count: Int) throws -> [String] {
        try (0..<count).map { index in
            let key = UniqueID.make()
            try replica.write { tx in
                try tx.insert(into: HubTestSchema.leads, primaryKey: key,
                              [HubTestSchema.column("store"): .text(store), HubTestSchema.column("name"): .text("n\(index)")])
            }
            return key
        }
    }

    private func stores(in replica: Replica) throws -> Set<String> {
        Set(try replica.read { db in try db.fetchAll("SELECT DISTINCT store FROM leads").compactMap { $0[0].textValue } })
    }

    func testATerminalHoldsOnlyItsStoresRowsAndTheHubHoldsAll() throws {
        let fixture = try makeFixture()
        let first = try fixture.makeTerminal("s1")
        let second = try fixture.makeTerminal("s2")
        let firstKeys = try writeLeads(first, store: "S1", count: 30)
        let secondKeys = try writeLeads(second, store: "S2", count: 30)
        for _ in 0..<2 {
            _ = try sync(fixture, first, store: "S1")
            _ = try sync(fixture, second, store: "S2")
        }
        XCTAssertEqual(try stores(in: first), ["S1"], "checked in the terminal's own SQLite file")
        XCTAssertEqual(try stores(in: second), ["S2"])
        XCTAssertEqual(try stores(in: fixture.hubReplica), ["S1", "S2"])
        let hubKeys = Set(try fixture.hubReplica.read { db in try db.fetchAll("SELECT id FROM leads").compactMap { $0[0].textValue } })
        XCTAssertEqual(hubKeys, Set(firstKeys + secondKeys))
        // The hub's pull cursor passed the other store's rows: a further sync moves nothing.
        let again = try sync(fixture, first, store: "S1")
        XCTAssertEqual(again.pulledRows, 0)
        XCTAssertEqual(again.pullCursor, fixture.hubReplica.latestSequence)
    }

    func testAScopeTheHubDoesNotServeIsRefusedAtTheHandshake() throws {
        let fixture = try makeFixture()
        let terminal = try fixture.makeTerminal("s9")
        _ = try writeLeads(terminal, store: "S9", count: 1)
        XCTAssertThrowsError(try sync(fixture, terminal, store: "S9")) { error in
            let failure = error as? SyncFailure
            XCTAssertEqual(failure?.code, .outOfScope, "\(error)")
            XCTAssertEqual(failure?.isPermanent, true)
        }
        XCTAssertEqual(try fixture.hubReplica.cursor(for: terminal.id).received, 0)
        XCTAssertEqual(fixture.hubReplica.latestSequence, 0)
    }

    func testAPushWithOneRowOutsideTheScopeIsRefusedWhole() throws {
        let fixture = try makeFixture()
        let terminal = try fixture.makeTerminal("s1")
        _ = try writeLeads(terminal, store: "S1", count: 3)
        _ = try sync(fixture, terminal, store: "S1")
        let acknowledged = try fixture.hubReplica.cursor(for: terminal.id).received
        let before = try fixture.hubReplica.canonicalDump()

        // A misconfigured terminal writes rows of another store next to rows of its own.
        _ = try writeLeads(terminal, store: "S1", count: 2)
        _ = try writeLeads(terminal, store: "S2", count: 1)
        XCTAssertThrowsError(try sync(fixture, terminal, store: "S1")) { error in
            XCTAssertEqual((error as? SyncFailure)?.code, .outOfScope, "\(error)")
        }
        XCTAssertEqual(try fixture.hubReplica.canonicalDump(), before, "nothing of the refused batch was applied")
        XCTAssertEqual(try fixture.hubReplica.cursor(for: terminal.id).received, acknowledged)
    }
}
