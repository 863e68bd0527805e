import Foundation
import Hub
import SyncEngine
import Terminal
import Wire
import XCTest

/// The hub's push-validation hook (Sources/Hub/PushValidator.swift): a batch the application's
/// validator refuses gets INVALID_VALUE with the validator's reason, nothing of it is applied,
/// and the hub keeps serving honest terminals. The retail schema behind the hook is tested in
/// RetailTests (HubValidationTests); this pins the hub's side with a validator of its own.
final class PushValidatorTests: XCTestCase {
    /// Refuses a visit with a negative duration, naming table, column and reason only.
    private struct NoNegativeDurations: PushValidator {
        func validate(_ changeset: Changeset) throws(PushRefusal) {
            for table in changeset.tables where table.table == HubTestSchema.visits {
                guard let index = table.columns.firstIndex(of: HubTestSchema.column("duration_min")) else { continue }
                for row in table.rows {
                    for cell in row.cells where cell.column == index {
                        if case .integer(let minutes) = cell.value, minutes < 0 {
                            throw PushRefusal("invalid value in visits.duration_min: out of range 0 … 1440")
                        }
                    }
                }
            }
        }
    }

    func testARefusedBatchGetsInvalidValueAppliesNothingAndTheHubServesOthers() throws {
        let fixture = try HubFixture { $0.pushValidator = NoNegativeDurations() }
        // One good row and one bad one: the whole batch is refused.
        func writeBatch(_ terminal: Replica) throws {
            try terminal.write { tx in
                try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                              [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(5)])
                try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                              [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(-7)])
            }
        }
        let bad = try fixture.makeTerminal("bad")
        try writeBatch(bad)
        XCTAssertThrowsError(try fixture.sync(bad)) { error in
            XCTAssertEqual((error as? SyncFailure)?.code, .invalidValue, "\(error)")
            XCTAssertTrue((error as? SyncFailure)?.message.contains("visits.duration_min") ?? false, "\(error)")
        }

        // Such a batch from a raw client (a replica of its own: the hub leased `bad`'s id to
        // the sync client above): the ERROR arrives, then the close.
        let rawBad = try fixture.makeTerminal("bad-raw")
        try writeBatch(rawBad)
        let client = try RawClient(port: fixture.address.port)
        try client.send(BadClient.hello(rawBad.id))
        guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
        try client.send(.push(try rawBad.changes(since: 0)))
        BadClient.expectErrorAndClose(try BadClient.serverAnswer(client), .invalidValue, "raw push of a refused batch")

        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits") }, .integer(0), "a refused batch was applied")
        XCTAssertEqual(try fixture.hubReplica.cursor(for: bad.id).received, 0, "the refused source's cursor moved")
        XCTAssertEqual(try fixture.hubReplica.cursor(for: rawBad.id).received, 0, "the refused raw source's cursor moved")

        let good = try fixture.makeTerminal("good")
        try good.write { tx in
            try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                          [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(12)])
        }
        _ = try fixture.sync(good)
        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits") }, .integer(1))
    }
}
