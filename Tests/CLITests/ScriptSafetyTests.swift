import Foundation
import Glibc
import Retail
import SQLite
import SyncEngine
import XCTest

/// Issue 11 items 8 and 9, through the built binary as scripts run it: create commands are safe
/// to retry with `--request-id`, a move to the current stage succeeds, and every failure says
/// whether to retry (exit 75) or not (1, 64 for usage), in JSON when asked.
final class ScriptSafetyTests: CLITestCase {
    private func count(_ file: String, _ table: String) throws -> Int {
        Int(try query(file, "SELECT count(*) FROM \(table)").first?.first?.integerValue ?? -1)
    }

    private func jsonObject(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "exactly one JSON object: \(text)", file: file, line: line)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text, file: file, line: line)
    }

    /// Runs a failing command with `--format json`; checks the exit code and the one object.
    @discardableResult
    private func failure(_ arguments: [String], status: Int32, error: String, retryable: Bool,
                         file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let outcome = try StoresyncBinary.run(arguments + ["--format", "json"])
        XCTAssertEqual(outcome.status, status, "\(arguments): \(outcome.stderr)", file: file, line: line)
        let object = try jsonObject(outcome.stdout, file: file, line: line)
        XCTAssertEqual(object["error"] as? String, error, "\(arguments): \(outcome.stdout)", file: file, line: line)
        XCTAssertEqual(object["retryable"] as? Bool, retryable, file: file, line: line)
        XCTAssertEqual(Set(object.keys), ["error", "message", "retryable"], file: file, line: line)
        return object["message"] as? String ?? ""
    }

    // MARK: --request-id

    func testARequestIDMakesEveryCreateCommandSafeToRetry() throws {
        let db = path("t.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])
        let creates: [(arguments: [String], table: String)] = [
            (["lead", "add", "--db", db, "--name", "Li Mei", "--phone", "+86 138 0013 8000"], "leads"),
            (["visit", "log", "--db", db, "--guide", "G1", "--duration-min", "5"], "visits"),
            (["stock", "count", "--db", db, "--sku", "K1", "--qty", "10"], "inventory_signals"),
            (["stock", "sale", "--db", db, "--sku", "K1", "--qty", "1"], "inventory_signals"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "2", "--amount", "99.90"], "sales"),
        ]
        for (index, create) in creates.enumerated() {
            let key = "script-run-7/step-\(index)"
            let before = try count("t.sqlite", create.table)
            let first = try storesync(create.arguments + ["--request-id", key, "--format", "json"])
            XCTAssertEqual(try count("t.sqlite", create.table), before + 1)
            // The script timed out and runs the same command again: nothing new, the same answer.
            for _ in 0..<2 {
                let again = try storesync(create.arguments + ["--request-id", key, "--format", "json"])
                XCTAssertEqual(again.stdout, first.stdout, "\(create.arguments)")
            }
            let text = try storesync(create.arguments + ["--request-id", key])
            XCTAssertEqual(text.stdout.trimmingCharacters(in: .newlines), try jsonObject(first.stdout)["id"] as? String)
            XCTAssertEqual(try count("t.sqlite", create.table), before + 1, "\(create.arguments) created one row in all")
            // Without a key, every run creates.
            try storesync(create.arguments)
            XCTAssertEqual(try count("t.sqlite", create.table), before + 2)
        }
        XCTAssertEqual(try count("t.sqlite", "sales"), 2, "one keyed sale and one unkeyed")
        XCTAssertEqual(try count("t.sqlite", "inventory_signals"), 6, "2 counts, 2 stock sales and the signals of 2 sale records")

        // A key names one request: other options under the same key are refused, not applied.
        try failure(creates[4].arguments.map { $0 == "2" ? "3" : $0 } + ["--request-id", "script-run-7/step-4"],
                    status: 1, error: "rejected", retryable: false)
        XCTAssertEqual(try count("t.sqlite", "sales"), 2)

        // Keys belong to this file only: `local_requests` is not a replicated table.
        XCTAssertEqual(try query("t.sqlite", "SELECT count(*) FROM sync_tables WHERE name = 'local_requests'"), [[.integer(0)]])
        XCTAssertEqual(try count("t.sqlite", "local_requests"), 6, "one row per created row: a sale record has two")
    }

    /// Scripts on several processes retrying the same request at once create it once.
    func testConcurrentRetriesOfOneRequestCreateOneSale() throws {
        let db = path("t.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])
        let arguments = ["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "1", "--amount", "5.00",
                         "--request-id", "order-42"]
        let outputs = try (0..<4).map { _ in try ChildCommand(arguments) }.map { child in
            // A script retries what says it may (75: the database was busy), as it should.
            var outcome = try child.wait()
            while outcome.status == 75 { outcome = try StoresyncBinary.run(arguments) }
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            return outcome.stdout
        }
        XCTAssertEqual(Set(outputs).count, 1, "every run printed the same sale: \(outputs)")
        XCTAssertEqual(try count("t.sqlite", "sales"), 1)
        XCTAssertEqual(try count("t.sqlite", "inventory_signals"), 1)
    }

    func testMovingALeadToTheStageItIsAtSucceeds() throws {
        let db = path("t.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])
        let lead = try storesync(["lead", "add", "--db", db, "--name", "Li Mei", "--phone", "+86 138 0013 8000"])
            .stdout.trimmingCharacters(in: .newlines)
        try storesync(["lead", "stage", "--db", db, "--id", lead, "--to", "needs-confirmed"])
        func latestSequence() throws -> Int? {
            try jsonObject(try storesync(["status", "--db", db, "--format", "json"]).stdout)["latest_sequence"] as? Int
        }
        let sequence = try latestSequence()
        let again = try storesync(["lead", "stage", "--db", db, "--id", lead, "--to", "needs_confirmed"])
        XCTAssertEqual(again.stdout, "\(lead) already at needs-confirmed\n")
        let json = try jsonObject(try storesync(["lead", "stage", "--db", db, "--id", lead, "--to", "needs-confirmed", "--format", "json"]).stdout)
        XCTAssertEqual(json["to"] as? String, "needs-confirmed")
        XCTAssertEqual(json["result"] as? String, "already at")
        XCTAssertEqual(try latestSequence(), sequence, "nothing was written")
        // A real refusal stays one.
        try failure(["lead", "stage", "--db", db, "--id", lead, "--to", "won"], status: 1, error: "rejected", retryable: false)
    }

    // MARK: Exit codes and JSON errors

    func testEveryFailureSaysWhetherToRetry() throws {
        let db = path("t.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])
        try failure(["lead", "add", "--db", db, "--phone", "1"], status: 64, error: "usage", retryable: false)
        try failure(["frobnicate"], status: 64, error: "usage", retryable: false)
        try failure(["status", "--db", path("none.sqlite")], status: 1, error: "not_found", retryable: false)
        try failure(["lead", "stage", "--db", db, "--id", "NOPE", "--to", "demo"], status: 1, error: "rejected", retryable: false)

        // Nothing listens: unreachable, retry later.
        let closed = try SilentListener()
        let address = closed.address
        closed.close()
        let message = try failure(["sync", "--db", db, "--hub", address, "--timeout-s", "5"], status: 75, error: "unreachable", retryable: true)
        XCTAssertTrue(message.contains("cannot connect"), message)
        try failure(["report", "--hub", address, "--view", "sales"], status: 75, error: "unreachable", retryable: true)
        let plain = try storesync(["sync", "--db", db, "--hub", address], expect: 75)
        XCTAssertTrue(plain.stdout.isEmpty, "without --format json, errors go to standard error only")

        // A hub at its connection cap answers SERVER_BUSY: retry later.
        try storesync(["init", "--db", path("hq.sqlite"), "--hq"])
        try storesync(["store", "add", "--db", path("hq.sqlite"), "--id", "S1", "--region", "north", "--lat", "31", "--lon", "121"])
        let hub = try HubProcess(["--db", path("hq.sqlite"), "--listen", "127.0.0.1:0", "--max-connections", "1",
                                  "--handshake-timeout-s", "3600"], logURL: directory.appendingPathComponent("hq.log"))
        let occupant = try SilentConnection(address: hub.address)
        // The occupant's connection is first in the hub's accept queue: it takes the one slot.
        try failure(["sync", "--db", db, "--hub", hub.address], status: 75, error: "hub_busy", retryable: true)
        withExtendedLifetime(occupant) {}

        // The database held by another writer beyond the busy timeout: retry later.
        let holder = try Database(path: db)
        try holder.execute("BEGIN IMMEDIATE")
        try failure(["lead", "add", "--db", db, "--name", "Li Mei", "--phone", "+86 138 0013 8000"],
                    status: 75, error: "database_busy", retryable: true)
        try holder.execute("ROLLBACK")
        hub.signal(SIGTERM)
        try hub.waitForExit()
    }

    /// A file this user may not read is reported as a permission problem, not as "not a
    /// replica, run init". Tests run as root, who may read anything: the command runs as
    /// `nobody` through setpriv.
    func testAFileThisUserMayNotReadIsAPermissionProblem() throws {
        let setpriv = "/usr/bin/setpriv"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: setpriv), "needs setpriv to run as another user")
        try storesync(["init", "--db", path("t.sqlite"), "--terminal", "--store", "S1"])
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path("t.sqlite"))
        var arguments = ["--clear-groups", "--", try StoresyncBinary.url().path, "status", "--db", path("t.sqlite"), "--format", "json"]
        if getuid() == 0 {
            arguments.insert(contentsOf: ["--reuid=65534", "--regid=65534"], at: 0)
        }
        let outcome = try ChildCommand(arguments, executable: setpriv).wait()
        XCTAssertEqual(outcome.status, 1, outcome.stderr)
        let object = try jsonObject(outcome.stdout)
        XCTAssertEqual(object["error"] as? String, "permission_denied")
        let message = try XCTUnwrap(object["message"] as? String)
        XCTAssertTrue(message.contains("permission denied") && message.contains("read"), message)
        XCTAssertFalse(message.contains("not a StoreSync replica"), message)
    }
}

/// A child process started now and waited for later; output through files, like `StoresyncBinary`.
final class ChildCommand {
    private let process = Process()
    private let stdoutURL: URL
    private let stderrURL: URL

    init(_ arguments: [String], executable: String? = nil) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory.path)
        stdoutURL = directory.appendingPathComponent("stdout")
        stderrURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = try executable.map { URL(fileURLWithPath: $0) } ?? StoresyncBinary.url()
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// What it wrote to standard error so far.
    var stderrSoFar: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    func wait() throws -> StoresyncBinary.Outcome {
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: stdoutURL.deletingLastPathComponent()) }
        return StoresyncBinary.Outcome(status: process.terminationStatus,
                                       stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
                                       stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "")
    }
}

/// A listening socket on 127.0.0.1:0 that accepts nothing; closing it leaves a port where
/// nothing listens (a connect is refused).
final class SilentListener {
    private var fd: Int32
    let address: String

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HubProcessError("socket failed: errno \(errno)") }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 1) == 0 else { throw HubProcessError("bind/listen failed: errno \(errno)") }
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        address = "127.0.0.1:\(UInt16(bigEndian: socketAddress.sin_port))"
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}
