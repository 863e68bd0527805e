import Foundation
import XCTest
import SQLite
@testable import SyncEngine

/// The small API central rules use: versions of cells and rows, and derived writes whose
/// version the caller chooses, merged exactly like a remote change.
final class DerivedWriteTests: XCTestCase {
    private let stage = TestSchema.column("stage")
    private let nameColumn = TestSchema.column("name")
    private let rulesOrigin = ReplicaID(high: 0, low: 0x42)

    private func lead(_ replica: Replica, _ key: String, stage value: String) throws {
        try replica.write { try $0.insert(into: TestSchema.leads, primaryKey: key, [self.nameColumn: .text(key), self.stage: .text(value)]) }
    }

    func testCellAndLifeVersionsAreTheWritesVersions() throws {
        let replica = try openMemoryReplica()
        try lead(replica, "L1", stage: "reached")
        let inserted = try replica.write { tx in try tx.lifeVersion(of: TestSchema.leads, primaryKey: "L1") }
        try replica.write { try $0.update(TestSchema.leads, primaryKey: "L1", set: [self.stage: .text("demo")]) }
        let (life, stageVersion, nameVersion, missing) = try replica.write { tx in
            (try tx.lifeVersion(of: TestSchema.leads, primaryKey: "L1"),
             try tx.version(of: TestSchema.leads, primaryKey: "L1", column: self.stage),
             try tx.version(of: TestSchema.leads, primaryKey: "L1", column: self.nameColumn),
             try tx.version(of: TestSchema.leads, primaryKey: "nope", column: self.stage))
        }
        XCTAssertEqual(life, inserted)
        XCTAssertEqual(nameVersion, inserted)
        XCTAssertNil(missing)
        let updated = try XCTUnwrap(stageVersion)
        XCTAssertGreaterThan(updated, try XCTUnwrap(inserted))
        XCTAssertEqual(updated.origin, replica.id)
        // The versions a peer receives are the same ones.
        let change = try replica.changes(since: 0)
        let cells = try XCTUnwrap(change.tables.first?.rows.first?.cells)
        XCTAssertTrue(cells.contains { $0.version == updated && $0.value == .text("demo") })
    }

    func testDerivedUpdateWinsOnlyWithAHigherVersionAndIsTheSameWriteEverywhere() throws {
        let terminal = try openMemoryReplica()
        try lead(terminal, "L1", stage: "demo")
        let batch = try terminal.changes(since: 0)
        let hubs = [try openMemoryReplica(), try openMemoryReplica()]
        for hub in hubs { _ = try hub.apply(batch) }
        let base = try XCTUnwrap(batch.tables[0].rows[0].cells.first?.version)
        let above = Version(hlc: HLCTimestamp(rawValue: base.hlc.rawValue + 1), origin: rulesOrigin)
        let below = Version(hlc: HLCTimestamp(rawValue: base.hlc.rawValue - 1), origin: rulesOrigin)
        for hub in hubs {
            let lost = try hub.write { try $0.update(TestSchema.leads, primaryKey: "L1", set: [self.stage: .text("reached")], version: below) }
            XCTAssertFalse(lost, "an older derived write loses to the cell it would overwrite")
            let won = try hub.write { try $0.update(TestSchema.leads, primaryKey: "L1", set: [self.stage: .text("negotiation")], version: above) }
            XCTAssertTrue(won)
            let again = try hub.write { try $0.update(TestSchema.leads, primaryKey: "L1", set: [self.stage: .text("negotiation")], version: above) }
            XCTAssertFalse(again, "deriving it again changes nothing")
        }
        XCTAssertEqual(try hubs[0].canonicalDump(includeVersions: true), try hubs[1].canonicalDump(includeVersions: true))
        XCTAssertTrue(try hubs[0].canonicalDump().contains(hexText("negotiation")))

        // Both hubs' copies reach the terminal as one write; its next local write beats it.
        for hub in hubs { _ = try terminal.apply(try hub.changes(since: 0, excluding: terminal.id)) }
        XCTAssertEqual(try terminal.read { try $0.fetchScalar("SELECT stage FROM leads WHERE id = 'L1'") }, .text("negotiation"))
        try terminal.write { try $0.update(TestSchema.leads, primaryKey: "L1", set: [self.stage: .text("won")]) }
        let newest = try terminal.write { try $0.version(of: TestSchema.leads, primaryKey: "L1", column: self.stage) }
        XCTAssertGreaterThan(try XCTUnwrap(newest), above)
        XCTAssertThrowsError(try hubs[0].write {
            try $0.update(TestSchema.leads, primaryKey: "missing", set: [self.stage: .text("x")], version: above)
        })
    }

    func testDerivedInsertIsIdempotentAndRefusesANullVersion() throws {
        let hub = try openMemoryReplica()
        let version = Version(hlc: HLCTimestamp(milliseconds: 1_700_000_000_000, counter: 3), origin: rulesOrigin)
        let values: [ColumnName: Value] = [TestSchema.column("store"): .text("S1"), TestSchema.column("outcome"): .text("derived")]
        XCTAssertTrue(try hub.write { try $0.insert(into: TestSchema.visits, primaryKey: "V-derived", values, version: version) })
        let sequence = hub.latestSequence
        XCTAssertFalse(try hub.write { try $0.insert(into: TestSchema.visits, primaryKey: "V-derived", values, version: version) })
        XCTAssertEqual(hub.latestSequence, sequence, "a re-derived row logs nothing")
        XCTAssertThrowsError(try hub.write { try $0.insert(into: TestSchema.visits, primaryKey: "V2", values, version: .zero) })

        var versions: [String: Version] = [:]
        try hub.forEachRowVersion(in: TestSchema.visits) { versions[$0] = $1 }
        XCTAssertEqual(versions, ["V-derived": version])
        let other = try openMemoryReplica()
        _ = try other.apply(try hub.changes(since: 0))
        XCTAssertEqual(try other.canonicalDump(includeVersions: true), try hub.canonicalDump(includeVersions: true))
    }

    func testRowVersionsOfInsertOnlyRowsAreTheirChangesetVersions() throws {
        let terminal = try openMemoryReplica()
        for index in 0..<5 {
            try terminal.write { try $0.insert(into: TestSchema.visits, primaryKey: "V\(index)", [TestSchema.column("store"): .text("S1")]) }
        }
        let batch = try terminal.changes(since: 0)
        let hub = try openMemoryReplica()
        _ = try hub.apply(batch)
        var versions: [String: Version] = [:]
        try hub.forEachRowVersion(in: TestSchema.visits) { versions[$0] = $1 }
        XCTAssertEqual(versions, Dictionary(uniqueKeysWithValues: batch.tables[0].rows.map { ($0.primaryKey, $0.lifeVersion) }))
        var lives: [String: Version] = [:]
        try lead(terminal, "L9", stage: "reached")
        try terminal.forEachRowVersion(in: TestSchema.leads) { lives[$0] = $1 }
        XCTAssertEqual(Array(lives.keys), ["L9"])
    }

    private func hexText(_ text: String) -> String {
        "t" + text.utf8.map { String(format: "%02x", $0) }.joined()
    }
}
