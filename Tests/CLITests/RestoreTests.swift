import Foundation
import SQLite
import XCTest

/// A node restored from `storesync backup` (issue 11, Deliver item 3): a regional hub, HQ and a
/// terminal, each backed up online, written on, stopped, replaced by its backup and started
/// again, every node the real `storesync` binary on loopback. Every write a command
/// acknowledged (exit 0) must then be at every node of its scope, the restored node must get
/// back what the others wrote after its backup, and a value it had overwritten after the backup
/// must not come back from it.
///
/// What makes this work: a backup is marked (`restored_from`) and its first open as a replica
/// gives it a new replica id, so its peers see a new source (push cursor 0 at its upstream) and
/// a new server (pull cursors 0 at its clients), and the rows written under the old id are
/// pushed again. Checked to fail before the engine's restore handling: with the cli branch's
/// binary of 16:26 (no engine merge) in place of the built `storesync`, the first three tests
/// time out waiting, every command exiting 0 (RELIABILITY.md, "Restore and clone faults").
final class RestoreTests: CLITestCase {
    /// Distinct phone numbers for the leads a test adds.
    private var phones = 0

    private func keys(_ file: String, _ table: String) throws -> Set<String> {
        Set(try query(file, "SELECT id FROM \(table)").compactMap { $0[0].textValue })
    }

    private func text(_ file: String, _ sql: String, _ values: [SQLValue] = []) throws -> String? {
        try query(file, sql, values).first?.first?.textValue
    }

    private func threshold(_ file: String, _ key: String) throws -> Int64? {
        try query(file, "SELECT min_quantity FROM thresholds WHERE id = ?", [.text(key)]).first?.first?.integerValue
    }

    /// Acknowledged writes by table (ids printed by the commands that exited 0).
    private struct Written {
        var rows: [String: Set<String>] = [:]
        mutating func add(_ table: String, _ id: String) { rows[table, default: []].insert(id) }
        mutating func add(_ other: Written) {
            for (table, ids) in other.rows { rows[table, default: []].formUnion(ids) }
        }
    }

    private struct Created: Decodable {
        var id: String?
        var signal: String?
    }

    /// One lead, one visit, one stock receipt and one sale line (with its stock signal) written
    /// through the CLI on a terminal; returns what was acknowledged.
    private func guideWork(_ file: String, tag: String) throws -> Written {
        var written = Written()
        func created(_ arguments: [String]) throws -> Created {
            let outcome = try storesync(arguments + ["--db", path(file), "--format", "json"])
            let line = outcome.stdout.split(separator: "\n").last.map(String.init) ?? ""
            return try JSONDecoder().decode(Created.self, from: Data(line.utf8))
        }
        phones += 1
        let phone = "+86 139 0000 \(1000 + phones)"
        if let id = try created(["lead", "add", "--name", "cust-\(tag)", "--phone", phone]).id { written.add("leads", id) }
        if let id = try created(["visit", "log", "--guide", "g-\(tag)", "--duration-min", "12"]).id { written.add("visits", id) }
        if let id = try created(["stock", "receive", "--sku", "TV-55", "--qty", "3"]).id { written.add("inventory_signals", id) }
        let sale = try created(["sale", "record", "--guide", "g-\(tag)", "--sku", "TV-55", "--qty", "1", "--amount", "12.50"])
        if let id = sale.id { written.add("sales", id) }
        if let id = sale.signal { written.add("inventory_signals", id) }
        XCTAssertEqual(written.rows.values.reduce(0) { $0 + $1.count }, 5, "every command of \(tag) printed its ids")
        return written
    }

    private func holds(_ file: String, _ written: Written) throws -> Bool {
        try written.rows.allSatisfy { table, ids in ids.isSubset(of: try keys(file, table)) }
    }

    private func assertHolds(_ file: String, _ written: Written, _ what: String, line: UInt = #line) throws {
        for (table, ids) in written.rows.sorted(by: { $0.key < $1.key }) {
            let missing = ids.subtracting(try keys(file, table))
            XCTAssertTrue(missing.isEmpty, "\(file) lacks \(missing.count) acknowledged \(table) rows (\(what)): \(missing.sorted())", line: line)
        }
    }

    // MARK: topology

    private func startHQ() throws -> HubProcess {
        if !FileManager.default.fileExists(atPath: path("hq.sqlite")) {
            try storesync(["init", "--db", path("hq.sqlite"), "--hq"])
            try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "N1", "--region", "north", "--lat", "39.9", "--lon", "116.4",
                           "--name", "store-N1"])
            try storesync(["threshold", "set", "--db", path("hq.sqlite"), "--store", "N1", "--sku", "TV-55", "--min", "4"])
        }
        return try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hq.log"))
    }

    private func startNorth(upstream: String) throws -> HubProcess {
        if !FileManager.default.fileExists(atPath: path("north.sqlite")) {
            try storesync(["init", "--db", path("north.sqlite"), "--hub", "--region", "north"])
        }
        return try HubProcess(["--db", path("north.sqlite"), "--listen", "127.0.0.1:0", "--upstream", upstream],
                              logURL: directory.appendingPathComponent("north.log"))
    }

    private func initTerminal(_ file: String) throws {
        try storesync(["init", "--db", path(file), "--terminal", "--store", "N1"])
    }

    private func sync(_ file: String, _ hub: HubProcess, line: UInt = #line) throws {
        try storesync(["sync", "--db", path(file), "--hub", hub.address, "--timeout-s", "30"], line: line)
    }

    private func stop(_ hub: HubProcess, line: UInt = #line) throws {
        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0, "a hub stops cleanly on SIGTERM: \(hub.log)", line: line)
    }

    /// Puts the backup in place of `file` (its WAL and shared memory gone with it), as an
    /// operator restoring a lost disk does.
    private func restore(_ file: String, from backup: String) throws {
        for suffix in ["", "-wal", "-shm"] { unlink(path(file) + suffix) }
        try FileManager.default.moveItem(atPath: path(backup), toPath: path(file))
    }

    /// `storesync sync` of `file` started in the background (the backup is taken meanwhile).
    private func startSync(_ file: String, _ hub: HubProcess) throws -> Process {
        let process = Process()
        process.executableURL = try StoresyncBinary.url()
        process.arguments = ["sync", "--db", path(file), "--hub", hub.address, "--timeout-s", "30"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    // MARK: tests

    func testARegionalHubRestoredFromAnOnlineBackupLosesNothing() throws {
        let hq = try startHQ()
        var north = try startNorth(upstream: hq.address)
        try waitUntil("north holds its store") { try keys("north.sqlite", "stores") == ["N1"] }
        for file in ["t1.sqlite", "t2.sqlite"] {
            try initTerminal(file)
            try sync(file, north)
        }
        var written = Written()
        // Before the backup: the operator's first value of a regional threshold, guides' work.
        try storesync(["threshold", "set", "--db", path("north.sqlite"), "--store", "N1", "--sku", "LAP-3", "--min", "6"])
        written.add(try guideWork("t1.sqlite", tag: "before"))
        try sync("t1.sqlite", north)

        // The online backup, taken while a terminal pushes to the hub.
        written.add(try guideWork("t1.sqlite", tag: "during"))
        let pushing = try startSync("t1.sqlite", north)
        try storesync(["backup", "--db", path("north.sqlite"), "--to", path("north.backup.sqlite")])
        pushing.waitUntilExit()
        XCTAssertEqual(pushing.terminationStatus, 0, "the sync beside the backup succeeded")

        // After the backup: more work below, the threshold changed at the hub, and HQ's operator
        // renames the store and sets a threshold; all of it reaches HQ (and north) before the restore.
        written.add(try guideWork("t2.sqlite", tag: "after-backup"))
        try sync("t2.sqlite", north)
        try storesync(["threshold", "set", "--db", path("north.sqlite"), "--store", "N1", "--sku", "LAP-3", "--min", "4"])
        try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "N1", "--region", "north", "--lat", "39.9", "--lon", "116.4",
                       "--name", "renamed-after-backup"])
        try storesync(["threshold", "set", "--db", path("hq.sqlite"), "--store", "N1", "--sku", "PH-12", "--min", "2"])
        try waitUntil("HQ holds every acknowledged row and north's new threshold") {
            try holds("hq.sqlite", written) && threshold("hq.sqlite", "N1/LAP-3") == 4
        }
        try waitUntil("north holds HQ's writes made after the backup") {
            try text("north.sqlite", "SELECT name FROM stores WHERE id = 'N1'") == "renamed-after-backup"
                && threshold("north.sqlite", "N1/PH-12") == 2
        }

        // The restore: north stops, its file is replaced by the backup, it starts again.
        try stop(north)
        try restore("north.sqlite", from: "north.backup.sqlite")
        north = try startNorth(upstream: hq.address)

        // After the restore: a guide writes and both terminals sync; the operator writes at north.
        written.add(try guideWork("t1.sqlite", tag: "after-restore"))
        try sync("t1.sqlite", north)
        try sync("t2.sqlite", north)
        try storesync(["threshold", "set", "--db", path("north.sqlite"), "--store", "N1", "--sku", "K9", "--min", "7"])

        // One relay round: everything acknowledged reaches HQ, HQ's writes come back down, and
        // the threshold the restore rolled back at north takes HQ's newer value again.
        try waitUntil("HQ holds every acknowledged row, also those acknowledged by the restored hub") {
            try holds("hq.sqlite", written) && threshold("hq.sqlite", "N1/K9") == 7
        }
        try waitUntil("the restored hub holds HQ's writes and the threshold set after its backup") {
            try text("north.sqlite", "SELECT name FROM stores WHERE id = 'N1'") == "renamed-after-backup"
                && threshold("north.sqlite", "N1/PH-12") == 2 && threshold("north.sqlite", "N1/LAP-3") == 4
        }
        for file in ["t1.sqlite", "t2.sqlite"] { try sync(file, north) }

        try assertHolds("hq.sqlite", written, "at HQ")
        try assertHolds("north.sqlite", written, "at the restored hub")
        XCTAssertEqual(try threshold("hq.sqlite", "N1/LAP-3"), 4, "the restored hub's stale threshold does not win at HQ")
        let thresholds = "SELECT id, min_quantity FROM thresholds ORDER BY id"
        let storeRow = "SELECT id, name, region FROM stores ORDER BY id"
        for file in ["t1.sqlite", "t2.sqlite"] {
            try assertHolds(file, written, "at a terminal")
            XCTAssertEqual(try query(file, thresholds), try query("hq.sqlite", thresholds), "\(file) has HQ's thresholds")
            XCTAssertEqual(try query(file, storeRow), try query("hq.sqlite", storeRow), "\(file) has HQ's store row")
            for table in ["leads", "visits", "inventory_signals", "sales"] {
                XCTAssertEqual(try keys(file, table), try keys("hq.sqlite", table), "\(file) \(table) equal HQ's")
            }
        }
        XCTAssertEqual(try query("north.sqlite", thresholds), try query("hq.sqlite", thresholds))
        XCTAssertEqual(try query("north.sqlite", "PRAGMA integrity_check").first?.first?.textValue, "ok")
        try stop(north)
        try stop(hq)
    }

    func testHQRestoredFromAnOnlineBackupLosesNothing() throws {
        var hq = try startHQ()
        var north = try startNorth(upstream: hq.address)
        try waitUntil("north holds its store") { try keys("north.sqlite", "stores") == ["N1"] }
        try initTerminal("t1.sqlite")
        var written = try guideWork("t1.sqlite", tag: "before")
        try sync("t1.sqlite", north)
        try waitUntil("HQ holds the first rows") { try holds("hq.sqlite", written) }

        // HQ backed up online while the relay pushes a terminal's rows to it.
        written.add(try guideWork("t1.sqlite", tag: "during"))
        let pushing = try startSync("t1.sqlite", north)
        try storesync(["backup", "--db", path("hq.sqlite"), "--to", path("hq.backup.sqlite")])
        pushing.waitUntilExit()
        XCTAssertEqual(pushing.terminationStatus, 0, "the sync beside the backup succeeded")

        // After the backup: rows relayed up and a rename at HQ relayed down, both before the restore.
        written.add(try guideWork("t1.sqlite", tag: "after-backup"))
        try sync("t1.sqlite", north)
        try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "N1", "--region", "north", "--lat", "39.9", "--lon", "116.4",
                       "--name", "renamed-after-backup"])
        try waitUntil("HQ holds every acknowledged row") { try holds("hq.sqlite", written) }
        try waitUntil("north holds the rename") {
            try text("north.sqlite", "SELECT name FROM stores WHERE id = 'N1'") == "renamed-after-backup"
        }

        // The restore of HQ (north restarts to reach HQ's new port).
        try stop(north)
        try stop(hq)
        try restore("hq.sqlite", from: "hq.backup.sqlite")
        hq = try startHQ()
        north = try startNorth(upstream: hq.address)

        // After the restore: HQ's operator renames the store and sets a threshold; a guide writes.
        try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "N1", "--region", "north", "--lat", "39.9", "--lon", "116.4",
                       "--name", "renamed-after-restore"])
        try storesync(["threshold", "set", "--db", path("hq.sqlite"), "--store", "N1", "--sku", "PH-12", "--min", "3"])
        written.add(try guideWork("t1.sqlite", tag: "after-restore"))
        try sync("t1.sqlite", north)

        try waitUntil("the restored HQ holds every acknowledged row, those it lost with the restore too") { try holds("hq.sqlite", written) }
        try waitUntil("north holds what HQ wrote after its restore") {
            try text("north.sqlite", "SELECT name FROM stores WHERE id = 'N1'") == "renamed-after-restore"
                && threshold("north.sqlite", "N1/PH-12") == 3
        }
        try sync("t1.sqlite", north)

        try assertHolds("hq.sqlite", written, "at the restored HQ")
        try assertHolds("north.sqlite", written, "at north")
        try assertHolds("t1.sqlite", written, "at the terminal")
        XCTAssertEqual(try text("t1.sqlite", "SELECT name FROM stores WHERE id = 'N1'"), "renamed-after-restore")
        let thresholds = "SELECT id, min_quantity FROM thresholds ORDER BY id"
        XCTAssertEqual(try query("t1.sqlite", thresholds), try query("hq.sqlite", thresholds))
        XCTAssertEqual(try query("north.sqlite", thresholds), try query("hq.sqlite", thresholds))
        for table in ["leads", "visits", "inventory_signals", "sales"] {
            XCTAssertEqual(try keys("t1.sqlite", table), try keys("hq.sqlite", table), "t1 \(table) equal HQ's")
        }
        XCTAssertEqual(try query("hq.sqlite", "PRAGMA integrity_check").first?.first?.textValue, "ok")
        try stop(north)
        try stop(hq)
    }

    func testATerminalRestoredFromItsBackupLosesNothing() throws {
        let hq = try startHQ()
        let north = try startNorth(upstream: hq.address)
        try waitUntil("north holds its store") { try keys("north.sqlite", "stores") == ["N1"] }
        try initTerminal("t1.sqlite")
        var written = try guideWork("t1.sqlite", tag: "before")
        try sync("t1.sqlite", north)
        try storesync(["backup", "--db", path("t1.sqlite"), "--to", path("t1.backup.sqlite")])
        // Acknowledged after the backup and pushed: the restore loses them locally, the hub has them.
        written.add(try guideWork("t1.sqlite", tag: "after-backup"))
        try sync("t1.sqlite", north)

        try restore("t1.sqlite", from: "t1.backup.sqlite")
        written.add(try guideWork("t1.sqlite", tag: "after-restore"))
        try sync("t1.sqlite", north)

        try waitUntil("HQ holds every acknowledged row of the restored terminal") { try holds("hq.sqlite", written) }
        try assertHolds("north.sqlite", written, "at the hub")
        try assertHolds("t1.sqlite", written, "at the restored terminal (what it lost with the restore came back)")
        // Its later writes still flow: a second round after the restore.
        let later = try guideWork("t1.sqlite", tag: "later")
        written.add(later)
        try sync("t1.sqlite", north)
        try waitUntil("HQ holds the restored terminal's later writes") { try holds("hq.sqlite", later) }
        try assertHolds("north.sqlite", written, "at the hub, after a second sync")
        try stop(north)
        try stop(hq)
    }

    /// A clone (a terminal's checkpointed file copied byte for byte, a cloned disk) and its
    /// original both write and sync: the later one is refused with REPLICA_CONFLICT, the
    /// operator runs `storesync reidentify` on it, and then every write of both reaches the hub,
    /// HQ and both terminals. Found by the chaos harness's clone fault: the copy that kept the
    /// id never received what the other wrote under that id before reidentifying (the hub left
    /// rows of a puller's own origin out of its pulls).
    func testACloneAndItsOriginalBothKeepEveryWriteAfterReidentify() throws {
        let hq = try startHQ()
        let north = try startNorth(upstream: hq.address)
        try waitUntil("north holds its store") { try keys("north.sqlite", "stores") == ["N1"] }
        try initTerminal("t1.sqlite")
        var written = try guideWork("t1.sqlite", tag: "before")
        try sync("t1.sqlite", north)
        _ = try Database(path: path("t1.sqlite")).checkpoint(.truncate)
        try FileManager.default.copyItem(atPath: path("t1.sqlite"), toPath: path("clone.sqlite"))

        written.add(try guideWork("t1.sqlite", tag: "original"))
        try sync("t1.sqlite", north)
        written.add(try guideWork("clone.sqlite", tag: "clone"))
        let refused = try storesync(["sync", "--db", path("clone.sqlite"), "--hub", north.address, "--format", "json"], expect: 1)
        XCTAssertTrue(refused.stdout.contains("replica_conflict"), refused.stdout)
        try storesync(["reidentify", "--db", path("clone.sqlite")])
        try sync("clone.sqlite", north)
        try sync("t1.sqlite", north)
        try sync("clone.sqlite", north)

        try waitUntil("HQ holds every acknowledged write of both") { try holds("hq.sqlite", written) }
        try assertHolds("north.sqlite", written, "at the hub")
        try assertHolds("t1.sqlite", written, "at the original (the clone's writes under the shared id too)")
        try assertHolds("clone.sqlite", written, "at the reidentified clone")
        try stop(north)
        try stop(hq)
    }
}
