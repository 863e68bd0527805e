import Foundation
import Glibc
import Retail
import SQLite
import SyncEngine
import XCTest

/// `storesync init`, `status`, `sync` and `hub` end to end through the built binary: what they
/// print, what they change on disk, and their exit codes (0 success, 1 failure, 64 usage, 75 retry later).
final class NodeCommandTests: CLITestCase {
    private func statusJSON(_ file: String, line: UInt = #line) throws -> [String: Any] {
        let outcome = try storesync(["status", "--db", path(file), "--format", "json"], expect: 0, line: line)
        let object = try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8))
        return try XCTUnwrap(object as? [String: Any], "status --format json prints one object: \(outcome.stdout)")
    }

    /// HQ with stores S1 and S2 registered (a hub serves only registered stores), served by a
    /// `storesync hub` child on 127.0.0.1:0.
    private func startHQ(_ extra: [String] = []) throws -> HubProcess {
        try storesync(["init", "--db", path("hq.sqlite"), "--hq"], expect: 0)
        let hq = try Replica(path: path("hq.sqlite"), schema: RetailSchema.all)
        try hq.write { tx in
            for store in ["S1", "S2"] {
                try ValidRows.store(tx, id: store, region: "north")
            }
        }
        return try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0"] + extra, logURL: directory.appendingPathComponent("hq.log"))
    }

    /// Writes rows of `store` into a terminal file no other process has open.
    private func writeRows(_ file: String, store: String, leads: Int, visits: Int) throws -> Set<String> {
        let replica = try Replica(path: path(file), schema: RetailSchema.all)
        var keys: Set<String> = []
        try replica.write { tx in
            for _ in 0..<leads {
                keys.insert(try ValidRows.lead(tx, store: store))
            }
            for _ in 0..<visits {
                keys.insert(try ValidRows.visit(tx, store: store))
            }
        }
        return keys
    }

    private func keys(_ file: String) throws -> Set<String> {
        var options = Database.Options()
        options.readOnly = true
        let database = try Database(path: path(file), options: options)
        return Set(try database.fetchAll("SELECT id FROM leads UNION ALL SELECT id FROM visits").compactMap { $0[0].textValue })
    }

    // MARK: init

    func testInitCreatesEachKindOfNodeOnceAndAgainIsANoOp() throws {
        let kinds: [(file: String, options: [String], role: String, scope: String)] = [
            ("t.sqlite", ["--terminal", "--store", "S001"], "terminal", "store:S001"),
            ("h.sqlite", ["--hub", "--region", "north-1"], "hub", "region:north-1"),
            ("q.sqlite", ["--hq"], "hq", "all"),
        ]
        for kind in kinds {
            let created = try storesync(["init", "--db", path(kind.file)] + kind.options, expect: 0)
            XCTAssertTrue(created.stdout.hasPrefix("created \(kind.role) replica "), created.stdout)
            XCTAssertTrue(created.stdout.contains("for \(kind.scope) at \(path(kind.file))"), created.stdout)
            let status = try statusJSON(kind.file)
            XCTAssertEqual(status["role"] as? String, kind.role)
            XCTAssertEqual(status["scope"] as? String, kind.scope)
            let replica = try XCTUnwrap(status["replica"] as? String)
            XCTAssertTrue(created.stdout.contains(replica), "init prints the replica id status reports")

            // The same init again changes nothing and says so.
            let again = try storesync(["init", "--db", path(kind.file)] + kind.options, expect: 0)
            XCTAssertTrue(again.stdout.contains("is already a \(kind.role) replica for \(kind.scope) (replica \(replica))"), again.stdout)
            XCTAssertEqual(try statusJSON(kind.file)["replica"] as? String, replica, "a replica's id never changes")
        }
    }

    func testInitRefusesMistakesAndNeverAltersAFile() throws {
        let usage: [([String], String)] = [
            (["init", "--terminal", "--store", "S1"], "missing --db"),
            (["init", "--db", path("x.sqlite")], "give exactly one of --terminal, --hub, --hq"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--hq"], "give exactly one of --terminal, --hub, --hq"),
            (["init", "--db", path("x.sqlite"), "--terminal"], "missing --store"),
            (["init", "--db", path("x.sqlite"), "--hub"], "missing --region"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--store", "S1", "--region", "north"], "--region is for --hub"),
            (["init", "--db", path("x.sqlite"), "--hub", "--region", "north", "--store", "S1"], "--store is for --terminal"),
            (["init", "--db", path("x.sqlite"), "--hq", "--store", "S1"], "give neither --store nor --region"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--store", "S 1"], "--store must be 1 to 64 letters"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--store", "../S1"], "--store must be 1 to 64 letters"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--store", "S1", "--colour", "red"], "unknown option --colour"),
            (["init", "--db", path("x.sqlite"), "--terminal", "--store", "S1", "extra"], "unexpected argument extra"),
            (["init", "--db"], "--db needs a value"),
        ]
        for (arguments, message) in usage {
            let outcome = try storesync(arguments, expect: 64)
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments): \(outcome.stderr)")
            XCTAssertTrue(outcome.stderr.contains("usage: storesync"), "a usage error shows the usage")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.sqlite")), "a usage error creates nothing")

        // An existing replica keeps what it is.
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "S1"], expect: 0)
        let before = try statusJSON("t.sqlite")
        for options in [["--terminal", "--store", "S2"], ["--hub", "--region", "north"], ["--hq"]] {
            let outcome = try storesync(["init", "--db", path("t.sqlite")] + options, expect: 1)
            XCTAssertTrue(outcome.stderr.contains("is already a terminal replica for store:S1"), outcome.stderr)
        }
        let after = try statusJSON("t.sqlite")
        XCTAssertEqual(after["replica"] as? String, before["replica"] as? String)
        XCTAssertEqual(after["scope"] as? String, "store:S1")

        // Someone else's SQLite database, or a file that is no database at all, is left as it was.
        let foreign = try Database(path: path("invoices.db"))
        try foreign.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER); INSERT INTO invoices VALUES (1, 500);")
        let foreignTables = try foreign.fetchAll("SELECT name FROM sqlite_master ORDER BY name")
        try "meeting notes\n".write(toFile: path("notes.txt"), atomically: true, encoding: .utf8)
        for file in ["invoices.db", "notes.txt"] {
            let outcome = try storesync(["init", "--db", path(file), "--terminal", "--store", "S1"], expect: 1)
            XCTAssertTrue(outcome.stderr.contains("is not a StoreSync replica"), outcome.stderr)
            let status = try storesync(["status", "--db", path(file)], expect: 1)
            XCTAssertTrue(status.stderr.contains("is not a StoreSync replica"), status.stderr)
        }
        XCTAssertEqual(try foreign.fetchAll("SELECT name FROM sqlite_master ORDER BY name"), foreignTables, "no table was added")
        XCTAssertEqual(try String(contentsOfFile: path("notes.txt"), encoding: .utf8), "meeting notes\n")

        let nowhere = try storesync(["init", "--db", path("missing-dir/t.sqlite"), "--hq"], expect: 1)
        XCTAssertTrue(nowhere.stderr.contains("cannot create a replica at"), nowhere.stderr)
    }

    // MARK: status

    func testStatusInTextAndJSON() throws {
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "S1"], expect: 0)
        let fresh = try statusJSON("t.sqlite")
        XCTAssertEqual(Set(fresh.keys), ["replica", "role", "scope", "latest_sequence", "unsynced_local_changes", "upstream", "last_sync"])
        let replica = try XCTUnwrap(fresh["replica"] as? String)
        XCTAssertEqual(replica.count, 32)
        XCTAssertTrue(replica.allSatisfy(\.isHexDigit), replica)
        XCTAssertEqual(fresh["latest_sequence"] as? Int, 0)
        XCTAssertEqual(fresh["unsynced_local_changes"] as? Int, 0)
        XCTAssertTrue(fresh["upstream"] is NSNull)
        XCTAssertTrue(fresh["last_sync"] is NSNull)

        _ = try writeRows("t.sqlite", store: "S1", leads: 2, visits: 3)
        let written = try statusJSON("t.sqlite")
        XCTAssertEqual(written["latest_sequence"] as? Int, 5)
        XCTAssertEqual(written["unsynced_local_changes"] as? Int, 5)

        let text = try storesync(["status", "--db", path("t.sqlite")], expect: 0).stdout
        for expected in ["replica:                \(replica)", "role:                   terminal", "scope:                  store:S1",
                         "latest sequence:        5", "unsynced local changes: 5", "upstream hub:           none yet",
                         "last successful sync:   never"] {
            XCTAssertTrue(text.contains(expected), "missing \"\(expected)\" in:\n\(text)")
        }

        try storesync(["status", "--db", path("t.sqlite"), "--format", "xml"], expect: 64)
        try storesync(["status"], expect: 64)
        let missing = try storesync(["status", "--db", path("none.sqlite")], expect: 1)
        XCTAssertTrue(missing.stderr.contains("no replica at"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("none.sqlite")), "status creates nothing")
        _ = try Replica(path: path("bare.sqlite"), schema: RetailSchema.all)  // a replica never initialised as a node
        let bare = try storesync(["status", "--db", path("bare.sqlite")], expect: 1)
        XCTAssertTrue(bare.stderr.contains("was not initialised with `storesync init`"), bare.stderr)
    }

    // MARK: sync

    func testSyncWithARunningHubAndItsExitCodes() throws {
        let hub = try startHQ()
        let hubID = try XCTUnwrap(try statusJSON("hq.sqlite")["replica"] as? String)
        for (file, store) in [("a.sqlite", "S1"), ("b.sqlite", "S1"), ("c.sqlite", "S2"), ("z.sqlite", "S9")] {
            try storesync(["init", "--db", path(file), "--terminal", "--store", store], expect: 0)
        }
        let written = try writeRows("a.sqlite", store: "S1", leads: 4, visits: 3)

        let pushed = try storesync(["sync", "--db", path("a.sqlite"), "--hub", hub.address, "--format", "json"], expect: 0)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(pushed.stdout.utf8)) as? [String: Any], pushed.stdout)
        XCTAssertEqual(report["hub"] as? String, hub.address)
        XCTAssertEqual(report["pushed_rows"] as? Int, 7)
        XCTAssertEqual(report["push_cursor"] as? Int, 7)
        XCTAssertEqual(try keys("hq.sqlite"), written, "the hub holds every row pushed")
        let status = try statusJSON("a.sqlite")
        XCTAssertEqual(status["upstream"] as? String, hubID)
        XCTAssertEqual(status["unsynced_local_changes"] as? Int, 0)
        XCTAssertNotNil(status["last_sync"] as? String)

        let pulled = try storesync(["sync", "--db", path("b.sqlite"), "--hub", hub.address], expect: 0)
        XCTAssertTrue(pulled.stdout.hasPrefix("synced with \(hub.address): pushed 0 rows"), pulled.stdout)
        XCTAssertEqual(try keys("b.sqlite"), written, "a second terminal of the store gets the rows")
        try storesync(["sync", "--db", path("c.sqlite"), "--hub", hub.address], expect: 0)
        XCTAssertEqual(try keys("c.sqlite"), [], "another store's terminal gets none of them")

        let unregistered = try storesync(["sync", "--db", path("z.sqlite"), "--hub", hub.address], expect: 1)
        XCTAssertTrue(unregistered.stderr.contains("store S9 is not registered"), unregistered.stderr)
        XCTAssertTrue(unregistered.stderr.contains("hub error 33"), "OUT_OF_SCOPE, not a dropped link: \(unregistered.stderr)")

        for (arguments, message) in [
            (["sync", "--db", path("a.sqlite")], "missing --hub"),
            (["sync", "--db", path("a.sqlite"), "--hub", "nowhere"], "--hub must be HOST:PORT"),
            (["sync", "--db", path("a.sqlite"), "--hub", hub.address, "--timeout-s", "0"], "--timeout-s must be"),
            (["sync", "--db", path("a.sqlite"), "--hub", hub.address, "--format", "yaml"], "--format is text or json"),
        ] {
            let outcome = try storesync(arguments, expect: 64)
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments): \(outcome.stderr)")
        }
        try storesync(["sync", "--db", path("none.sqlite"), "--hub", hub.address], expect: 1)

        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(), 0)
        // A hub that is down is worth retrying later: exit 75, not 1.
        let down = try storesync(["sync", "--db", path("a.sqlite"), "--hub", hub.address, "--timeout-s", "5"], expect: 75)
        XCTAssertTrue(down.stderr.contains("sync with \(hub.address) failed"), down.stderr)

        // A hub needs a hub or HQ replica, and its options.
        let onTerminal = try StoresyncBinary.run(["hub", "--db", path("a.sqlite"), "--listen", "127.0.0.1:0"])
        XCTAssertEqual(onTerminal.status, 1, onTerminal.stderr)
        XCTAssertTrue(onTerminal.stderr.contains("is a terminal replica"), onTerminal.stderr)
        try storesync(["hub", "--db", path("hq.sqlite")], expect: 64)
        try storesync(["hub", "--db", path("hq.sqlite"), "--listen", "127.0.0.1:0", "--max-connections", "0"], expect: 64)
    }

    // MARK: hub shutdown

    /// SIGTERM drains and exits 0 without waiting for its clients: a live terminal and a
    /// connection that never says HELLO, with timeouts of an hour, do not hold it.
    func testSIGTERMDrainsAndExitsZeroWithClientsConnected() throws {
        let hub = try startHQ(["--idle-timeout-s", "3600", "--handshake-timeout-s", "3600"])
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "S1"], expect: 0)
        let written = try writeRows("t.sqlite", store: "S1", leads: 20, visits: 20)

        let live = Process()
        live.executableURL = try StoresyncBinary.url()
        live.arguments = ["sync", "--db", path("t.sqlite"), "--hub", hub.address, "--live", "--log-level", "info"]
        let liveLog = directory.appendingPathComponent("live.log")
        _ = FileManager.default.createFile(atPath: liveLog.path, contents: nil)
        live.standardOutput = FileHandle.nullDevice
        live.standardError = try FileHandle(forWritingTo: liveLog)
        let liveExited = DispatchSemaphore(value: 0)
        live.terminationHandler = { _ in liveExited.signal() }
        try live.run()
        defer { if live.isRunning { kill(live.processIdentifier, SIGKILL) } }

        let silent = try SilentConnection(address: hub.address)
        try waitUntil("the live terminal pushed its rows") { try keys("hq.sqlite") == written }
        try waitUntil("the live terminal reports being in sync") {
            ((try? String(contentsOf: liveLog, encoding: .utf8)) ?? "").contains("in sync")
        }

        hub.signal(SIGTERM)
        XCTAssertEqual(try hub.waitForExit(timeout: 30), 0, "SIGTERM: drain, exit 0 (log: \(hub.log))")
        XCTAssertTrue(hub.log.contains("draining"), hub.log)
        XCTAssertTrue(hub.log.contains("hub stopped"), hub.log)
        XCTAssertTrue(silent.waitForClose(timeout: 30), "the silent connection was closed by the hub's exit")
        XCTAssertEqual(try keys("hq.sqlite"), written, "what the hub acknowledged survived the shutdown")
        var options = Database.Options()
        options.readOnly = true
        XCTAssertEqual(try Database(path: path("hq.sqlite"), options: options).integrityCheck(), "ok")

        // The live terminal keeps retrying a hub that is gone, and stops cleanly on SIGTERM too.
        kill(live.processIdentifier, SIGTERM)
        XCTAssertEqual(liveExited.wait(timeout: .now() + 30), .success, "sync --live exits on SIGTERM")
        XCTAssertEqual(live.terminationStatus, 0)
    }

}

/// A TCP connection that connects and never sends a byte (a client stuck before HELLO).
final class SilentConnection {
    let fd: Int32

    init(address: String) throws {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw HubProcessError("not HOST:PORT: \(address)")
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HubProcessError("socket failed: errno \(errno)") }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw HubProcessError("connect to \(address) failed: errno \(code)")
        }
    }

    deinit { close(fd) }

    /// Waits until the peer closes (end of stream or reset).
    func waitForClose(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 256)
        while Date() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            if buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) <= 0 { return true }
        }
        return false
    }
}
