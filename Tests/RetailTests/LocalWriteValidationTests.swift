import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// The schema hubs enforce guards the retail write paths too: input that passes a command's own
/// checks but breaks the schema is refused with `RetailError.schemaViolation`, and nothing is
/// written (a row the hub would refuse must never enter the terminal's log, where it would
/// block every later push).
final class LocalWriteValidationTests: XCTestCase {
    private func schemaViolation(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> SchemaViolation? {
        do {
            try body()
            XCTFail("the write was accepted", file: file, line: line)
        } catch RetailError.schemaViolation(let violation) {
            return violation
        } catch {
            XCTFail("expected a schema violation, got \(error)", file: file, line: line)
        }
        return nil
    }

    func testWritesBreakingTheSchemaAreRefusedAndWriteNothing() throws {
        let factory = try ReplicaFactory(self)
        let clock = TestClock(testEpoch)
        let replica = try factory.open("t", clock: clock)
        let start = replica.latestSequence

        // A phone the normaliser accepts (12 digits) padded past 64 bytes with separators.
        let phone = "+86 " + String(repeating: "- ", count: 40) + "138 0013 8000"
        let longPhone = schemaViolation { _ = try Leads.add(LeadDraft(customerName: "Li Mei", phone: phone), store: "S1", in: replica, now: clock.nowMs) }
        XCTAssertEqual(longPhone, SchemaViolation(table: "leads", column: "phone", reason: .tooLong(maxBytes: 64), row: longPhone?.row))
        XCTAssertFalse(longPhone?.description.contains("0013") ?? true, "the value is echoed")

        // Beyond the clock's 48 bits of milliseconds.
        let late = schemaViolation { _ = try Leads.add(LeadDraft(customerName: "Li Mei", phone: "13800138000"), store: "S1", in: replica, now: 1 << 48) }
        XCTAssertEqual(late?.column, "created_ms")

        // 200 characters (what the command allows) of 8-byte emoji: 1,600 bytes.
        let name = String(repeating: "👍🏽", count: 200)
        let longName = schemaViolation { try ReferenceData.setStore(id: "S1", region: "east", latitude: 1, longitude: 1, name: name, in: replica) }
        XCTAssertEqual(longName?.column, "name")
        XCTAssertEqual(longName?.reason, .tooLong(maxBytes: 800))

        let products = (0..<2_000).map { "K\($0)" }
        let manyProducts = schemaViolation {
            _ = try FieldActivity.logVisit(VisitDraft(guide: "G1", products: products), store: "S1", in: replica, now: clock.nowMs)
        }
        XCTAssertEqual(manyProducts?.column, "products")

        let badStore = schemaViolation { _ = try FieldActivity.recordSignal(.receipt, sku: "K1", quantity: 1, guide: nil, store: "S 1", in: replica, now: clock.nowMs) }
        XCTAssertEqual(badStore?.column, "store")

        XCTAssertThrowsError(try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 1, amountCents: RetailBounds.maximumAmountCents + 1,
                                                          lead: nil, store: "S1", in: replica, now: clock.nowMs)) { error in
            XCTAssertEqual((error as? RetailError).map { if case .invalidValue(let field, _) = $0 { return field } else { return "" } }, "--amount")
        }
        XCTAssertEqual(replica.latestSequence, start, "a refused write wrote something")

        // An unknown lead is still reported as such, before the schema's verdict on its id.
        XCTAssertThrowsError(try FieldActivity.logVisit(VisitDraft(guide: "G1", lead: "NOPE"), store: "S1", in: replica, now: clock.nowMs)) { error in
            XCTAssertEqual(error as? RetailError, .unknownLead("NOPE"))
        }

        // A lead moved at a time beyond the clock's range: the move writes nothing.
        let lead = try Leads.add(LeadDraft(customerName: "Li Mei", phone: "13800138000"), store: "S1", in: replica, now: clock.nowMs)
        let afterAdd = replica.latestSequence
        let move = schemaViolation { _ = try Leads.move(lead, to: .needsConfirmed, store: "S1", in: replica, now: 1 << 48) }
        XCTAssertEqual(move?.table, "leads")
        XCTAssertEqual(move?.row, lead)
        XCTAssertEqual(replica.latestSequence, afterAdd)
        XCTAssertEqual(try replica.text("SELECT stage FROM leads WHERE id = ?", [.text(lead)]), "reached")
    }
}
