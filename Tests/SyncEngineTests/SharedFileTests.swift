import Foundation
import XCTest
@testable import SyncEngine

/// Two processes writing one replica file (a live sync beside a guide's commands), modelled by
/// two `Replica` objects on the same path: each has its own connection, counter and clock.
final class SharedFileTests: XCTestCase {
    func testTwoWritersOnOneFileNeverShareASequenceOrAVersion() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("terminal.sqlite").path
        let first = try Replica(path: path, schema: TestSchema.tables)
        let second = try Replica(path: path, schema: TestSchema.tables)
        let peer = try Replica(path: ":memory:", schema: TestSchema.tables)
        var random = SplitMix64(seed: 99)
        var keys: [String] = []

        var pulled: UInt64 = 0
        for round in 0..<60 {
            let writer = Bool.random(using: &random) ? first : second
            let key = UniqueID.make()
            keys.append(key)
            try writer.write { tx in
                try tx.insert(into: TestSchema.visits, primaryKey: key, [TestSchema.column("store"): .text("S1")])
                try tx.insert(into: TestSchema.leads, primaryKey: key, [TestSchema.column("name"): .text("n\(round)")])
            }
            // Another peer registered by the other writer: site numbers must not collide.
            if round % 20 == 0 {
                let remote = try Replica(path: ":memory:", schema: TestSchema.tables)
                try remote.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: UniqueID.make(), [TestSchema.column("store"): .text("S1")]) }
                _ = try (round % 40 == 0 ? first : second).apply(try remote.changes(since: 0), recordCursor: false)
            }
            // A sync process pulling from either connection sees every commit, in order.
            let reader = Bool.random(using: &random) ? first : second
            let batch = try reader.changes(since: pulled)
            XCTAssertGreaterThanOrEqual(batch.toSequence, pulled)
            _ = try peer.apply(batch, recordCursor: false)
            pulled = batch.toSequence
        }
        XCTAssertEqual(first.latestSequence, second.latestSequence)
        XCTAssertEqual(try first.canonicalDump(includeVersions: true), try second.canonicalDump(includeVersions: true))
        XCTAssertEqual(try peer.canonicalDump(includeVersions: true), try first.canonicalDump(includeVersions: true),
                       "a peer pulling through either connection missed nothing")

        let rows = try first.read { db in
            try db.fetchAll("SELECT seq FROM sync_log_visits UNION ALL SELECT seq FROM sync_lww_leads").compactMap(\.first?.integerValue)
        }
        XCTAssertEqual(Set(rows).count, rows.count, "no sequence number handed out twice")
        let versions = try first.read { db in try db.fetchAll("SELECT hlc, site FROM sync_log_visits") }
        XCTAssertEqual(Set(versions.map { "\($0[0])/\($0[1])" }).count, versions.count, "no version stamped twice")
    }
}
