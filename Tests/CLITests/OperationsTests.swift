import Foundation
import Glibc
import Retail
import SQLite
import SyncEngine
import XCTest

/// Issue 11 item 4, CLI side: one long-running process per replica file, a clean stop leaves a
/// self-contained main file, and `storesync backup` takes an online, consistent copy.
final class OperationsTests: CLITestCase {
    /// HQ with store S1, served by a `storesync hub` child; a terminal of S1 that pushed `rows` leads.
    private func hqWithRows(_ rows: Int) throws -> HubProcess {
        try storesync(["init", "--db", path("hq.sqlite"), "--hq"])
        try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "S1", "--region", "north", "--lat", "31", "--lon", "121"])
        let hub = try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hq.log"))
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "S1"])
        let terminal = try Replica(path: path("t.sqlite"), schema: RetailSchema.all)
        try terminal.write { tx in
            for _ in 0..<rows {
                try ValidRows.lead(tx, store: "S1")
            }
        }
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", hub.address])
        return hub
    }

    private func leads(_ file: String) throws -> Int64 {
        try query(file, "SELECT count(*) FROM leads").first?.first?.integerValue ?? -1
    }

    func testASecondHubOnTheSameFileSaysWhoHoldsIt() throws {
        let hub = try hqWithRows(1)
        let second = try StoresyncBinary.run(["hub", "--db", path("hq.sqlite"), "--listen", "127.0.0.1:0", "--format", "json"])
        XCTAssertEqual(second.status, 1, second.stderr)
        XCTAssertTrue(second.stderr.contains("is in use by process \(hub.process.processIdentifier) (storesync hub --db \(path("hq.sqlite"))"),
                      second.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any], second.stdout)
        XCTAssertEqual(object["error"] as? String, "in_use")
        XCTAssertTrue(hub.process.isRunning, "the first hub serves on")

        // Two live agents on one terminal file: the second is refused the same way.
        let live = try ChildCommand(["sync", "--db", path("t.sqlite"), "--hub", hub.address, "--live"])
        try waitUntil("the live agent is in sync") { live.stderrSoFar.contains("in sync") }
        let again = try StoresyncBinary.run(["sync", "--db", path("t.sqlite"), "--hub", hub.address, "--live"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("is in use by process"), again.stderr)
        XCTAssertTrue(again.stderr.contains("sync --db \(path("t.sqlite")) --hub \(hub.address) --live"), again.stderr)
        // A one-shot sync and guides' commands still work beside it (SQLite serialises them).
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", hub.address])
        try storesync(["lead", "add", "--db", path("t.sqlite"), "--name", "Li Mei", "--phone", "+86 138 0013 8000"])

        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
        // Once it stopped, the file is free again.
        let next = try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hq2.log"))
        next.signal(SIGTERM)
        XCTAssertEqual(try next.waitForExit(), 0)
        kill(live.pid, SIGTERM)
        let stopped = try live.wait()
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
    }

    /// After SIGTERM the write-ahead log is merged: the main file alone, copied cold, holds
    /// every row the hub acknowledged.
    func testACleanStopLeavesEveryRowInTheMainFile() throws {
        let hub = try hqWithRows(500)
        XCTAssertEqual(try leads("hq.sqlite"), 500)
        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
        let wal = path("hq.sqlite") + "-wal"
        let walSize = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue ?? 0
        XCTAssertEqual(walSize, 0, "the WAL was checkpointed and truncated")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("cold"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path("hq.sqlite"), toPath: path("cold/hq.sqlite"))
        XCTAssertEqual(try leads("cold/hq.sqlite"), 500, "a cold copy of the main file alone has every row")
    }

    /// `storesync backup` while the hub runs and a terminal keeps pushing: a consistent copy,
    /// marked as a backup of HQ's replica.
    func testAnOnlineBackupIsConsistentAndMarked() throws {
        let hub = try hqWithRows(300)
        let replica = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try storesync(
            ["status", "--db", path("hq.sqlite"), "--format", "json"]).stdout.utf8)) as? [String: Any])["replica"] as? String
        let pusher = try ChildCommand(["sync", "--db", path("t.sqlite"), "--hub", hub.address, "--live"])
        let terminal = try Replica(path: path("t.sqlite"), schema: RetailSchema.all)
        for _ in 0..<20 {
            try terminal.write { tx in
                for _ in 0..<50 {
                    try ValidRows.lead(tx, store: "S1")
                }
            }
        }
        let backup = try storesync(["backup", "--db", path("hq.sqlite"), "--to", path("backup.sqlite")])
        XCTAssertTrue(backup.stdout.contains("backed up replica"), backup.stdout)
        var options = Database.Options()
        options.readOnly = true
        let copy = try Database(path: path("backup.sqlite"), options: options)
        XCTAssertEqual(try copy.integrityCheck(), "ok")
        let copied = try copy.fetchScalar("SELECT count(*) FROM leads")?.integerValue ?? -1
        XCTAssertGreaterThanOrEqual(copied, 300)
        XCTAssertEqual(try copy.fetchScalar("SELECT value FROM sync_state WHERE key = 'restored_from'")?.textValue, replica)
        // Never over an existing file.
        try storesync(["backup", "--db", path("hq.sqlite"), "--to", path("backup.sqlite")], expect: 1)
        try waitUntil("the hub holds every row") { try leads("hq.sqlite") == 1_300 }
        kill(pusher.pid, SIGTERM)
        _ = try pusher.wait()
        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
    }

    /// Writes `count` leads of S1 into a terminal file no process has open; returns their keys.
    private func writeLeads(_ file: String, _ count: Int) throws -> Set<String> {
        let replica = try Replica(path: path(file), schema: RetailSchema.all)
        var keys: Set<String> = []
        try replica.write { tx in
            for _ in 0..<count { keys.insert(try ValidRows.lead(tx, store: "S1")) }
        }
        XCTAssertTrue(try replica.close(), "the WAL is merged into \(file)")
        return keys
    }

    private func replicaID(_ file: String) throws -> String {
        let status = try storesync(["status", "--db", path(file), "--format", "json"])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], status.stdout)
        return try XCTUnwrap(object["replica"] as? String)
    }

    /// A byte copy of a checkpointed terminal file (a cloned disk) speaks as the same replica:
    /// once the original synced again, the hub refuses the clone with REPLICA_CONFLICT (exit 1,
    /// `replica_conflict`, telling the operator to run `storesync reidentify`). After
    /// `reidentify` the clone syncs under a new id, and every write of both files reaches the hub.
    func testAClonedFileIsRefusedUntilReidentifiedAndThenLosesNothing() throws {
        let hub = try hqWithRows(0)
        var written = try writeLeads("t.sqlite", 3)
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", hub.address])
        // The clone: a byte copy of the checkpointed main file, lease and all.
        _ = try writeLeads("t.sqlite", 0)
        try FileManager.default.copyItem(atPath: path("t.sqlite"), toPath: path("clone.sqlite"))
        let original = try replicaID("t.sqlite")
        XCTAssertEqual(try replicaID("clone.sqlite"), original)

        // Both go on writing; the original syncs first and gets a new lease.
        written.formUnion(try writeLeads("t.sqlite", 2))
        let cloneWrites = try writeLeads("clone.sqlite", 4)
        written.formUnion(cloneWrites)
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", hub.address])

        let refused = try StoresyncBinary.run(["sync", "--db", path("clone.sqlite"), "--hub", hub.address, "--format", "json"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(refused.stdout.utf8)) as? [String: Any], refused.stdout)
        XCTAssertEqual(object["error"] as? String, "replica_conflict")
        XCTAssertEqual(object["retryable"] as? Bool, false)
        XCTAssertTrue((object["message"] as? String ?? "").contains("storesync reidentify"), refused.stdout)
        XCTAssertTrue(try cloneWrites.isDisjoint(with: keys("hq.sqlite")), "nothing of the refused clone was merged")

        let renamed = try storesync(["reidentify", "--db", path("clone.sqlite")])
        XCTAssertTrue(renamed.stdout.contains(original), renamed.stdout)
        let renewed = try replicaID("clone.sqlite")
        XCTAssertNotEqual(renewed, original)
        XCTAssertTrue(renamed.stdout.contains(renewed), renamed.stdout)

        try storesync(["sync", "--db", path("clone.sqlite"), "--hub", hub.address])
        try storesync(["sync", "--db", path("t.sqlite"), "--hub", hub.address])
        XCTAssertEqual(try keys("hq.sqlite"), written, "every write of the original and of the clone reached the hub")
        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
    }

    /// `reidentify` takes the replica's lock: it refuses while a hub or live agent serves the file.
    func testReidentifyRefusesAFileInUse() throws {
        let hub = try hqWithRows(1)
        let refused = try StoresyncBinary.run(["reidentify", "--db", path("hq.sqlite"), "--format", "json"])
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("is in use by process \(hub.process.processIdentifier)"), refused.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(refused.stdout.utf8)) as? [String: Any], refused.stdout)
        XCTAssertEqual(object["error"] as? String, "in_use")
        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
    }

    private func keys(_ file: String) throws -> Set<String> {
        Set(try query(file, "SELECT id FROM leads").compactMap { $0.first?.textValue })
    }
}
