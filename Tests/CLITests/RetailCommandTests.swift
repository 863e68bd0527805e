import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

/// The guides' and operators' commands through the built `storesync` binary, and the central
/// rules as `storesync hub` runs them, end to end.
final class RetailCommandTests: CLITestCase {
    /// The single line a command printed.
    private func output(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try storesync(arguments, file: file, line: line).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func json(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Any {
        let text = try output(arguments + ["--format", "json"], file: file, line: line)
        return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    /// Everything a replica file holds that a command could change: user tables with versions,
    /// and the latest sequence.
    private func state(_ file: String) throws -> String {
        let replica = try Replica(path: path(file), schema: RetailSchema.all)
        return try replica.canonicalDump(includeVersions: true) + "seq \(replica.latestSequence)"
    }

    private func isULID(_ text: String) -> Bool {
        text.count == 26 && text.allSatisfy { $0.isASCII && ($0.isNumber || $0.isUppercase) }
    }

    func testGuideCommandsEndToEnd() throws {
        let db = path("t1.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])

        let lead = try output(["lead", "add", "--db", db, "--name", "Li Mei", "--phone", "+86 138 0013 8000", "--source", "walk-in",
                               "--score", "70", "--owner", "G1"])
        XCTAssertTrue(isULID(lead), lead)
        let added = try XCTUnwrap(try json(["lead", "add", "--db", db, "--name", "Wang Wei", "--phone", "139-0000-0001"]) as? [String: Any])
        let other = try XCTUnwrap(added["id"] as? String)
        XCTAssertEqual(try query("t1.sqlite", "SELECT store, grade, stage, phone_normalized, previous_stage FROM leads WHERE id = ?", [.text(lead)]),
                       [[.text("S1"), .text("B"), .text("reached"), .text("+8613800138000"), .null]])

        XCTAssertEqual(try output(["lead", "update", "--db", db, "--id", lead, "--score", "90"]), lead)
        XCTAssertEqual(try output(["lead", "stage", "--db", db, "--id", lead, "--to", "needs_confirmed"]), "\(lead) reached -> needs-confirmed")
        let staged = try XCTUnwrap(try json(["lead", "stage", "--db", db, "--id", lead, "--to", "demo"]) as? [String: String])
        XCTAssertEqual(staged, ["id": lead, "from": "needs-confirmed", "to": "demo"])

        let gradeA = try XCTUnwrap(try json(["lead", "list", "--db", db, "--grade", "A"]) as? [[String: Any]])
        XCTAssertEqual(gradeA.map { $0["id"] as? String }, [lead])
        XCTAssertEqual(gradeA.first?["stage"] as? String, "demo")
        XCTAssertEqual(gradeA.first?["grade"] as? String, "A")
        XCTAssertNotNil(gradeA.first?["first_response_ms"] as? Int, "a stage change is the first touch")
        let all = try XCTUnwrap(try json(["lead", "list", "--db", db]) as? [[String: Any]])
        XCTAssertEqual(Set(all.compactMap { $0["id"] as? String }), [lead, other])
        XCTAssertEqual(try XCTUnwrap(try json(["lead", "list", "--db", db, "--overdue"]) as? [Any]).count, 0, "nothing is due yet")
        XCTAssertTrue(try output(["lead", "list", "--db", db]).contains("Li Mei"))

        let visit = try output(["visit", "log", "--db", db, "--guide", "G1", "--lead", lead, "--customer", "Li Mei",
                                "--duration-min", "25", "--products", "K1,K2", "--outcome", "wants a demo at home"])
        XCTAssertTrue(isULID(visit))
        XCTAssertEqual(try query("t1.sqlite", "SELECT lead, duration_min, products FROM visits WHERE id = ?", [.text(visit)]),
                       [[.text(lead), .integer(25), .text("K1,K2")]])

        for (kind, quantity) in [("count", "10"), ("receive", "5"), ("sale", "2"), ("adjust", "-1")] {
            XCTAssertTrue(isULID(try output(["stock", kind, "--db", db, "--sku", "K1", "--qty", quantity, "--guide", "G1"])))
        }
        let sale = try XCTUnwrap(try json(["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "3",
                                           "--amount", "12.34", "--lead", lead]) as? [String: String])
        XCTAssertEqual(try query("t1.sqlite", "SELECT amount_cents, quantity, lead FROM sales WHERE id = ?", [.text(sale["id"] ?? "")]),
                       [[.integer(1_234), .integer(3), .text(lead)]], "12.34 is exactly 1234 cents")
        XCTAssertEqual(try query("t1.sqlite", "SELECT kind, quantity FROM inventory_signals WHERE id = ?", [.text(sale["signal"] ?? "")]),
                       [[.text("sale"), .integer(-3)]], "a sale line also takes its units out of stock")

        let levels = try XCTUnwrap(try json(["stock", "show", "--db", db, "--sku", "K1"]) as? [[String: Any]])
        XCTAssertEqual(levels.first?["stock"] as? Int, 9, "count 10 + 5 - 2 - 1 - 3")
        XCTAssertEqual(levels.first?["signals"] as? Int, 5)
        XCTAssertTrue(try output(["stock", "show", "--db", db]).contains("K1"))
        let listed = try XCTUnwrap(try json(["lead", "list", "--db", db, "--grade", "A"]) as? [[String: Any]])
        XCTAssertEqual(listed.first?["visits"] as? Int, 1)
        XCTAssertEqual(listed.first?["sales_amount"] as? String, "12.34")
        XCTAssertEqual(try XCTUnwrap(try json(["promotions", "--db", db]) as? [Any]).count, 0)
    }

    func testBadInputIsRefusedClearlyAndChangesNothing() throws {
        let db = path("t1.sqlite")
        let hub = path("hub.sqlite")
        try storesync(["init", "--db", db, "--terminal", "--store", "S1"])
        try storesync(["init", "--db", hub, "--hub", "--region", "east"])
        let lead = try output(["lead", "add", "--db", db, "--name", "Li Mei", "--phone", "+86 138 0013 8000"])
        try storesync(["stock", "count", "--db", db, "--sku", "K1", "--qty", "4"])
        try storesync(["store", "add", "--db", hub, "--id", "S1", "--region", "east", "--lat", "31.2", "--lon", "121.5"])

        let cases: [(arguments: [String], status: Int32, message: String)] = [
            (["lead", "stage", "--db", db, "--id", "NO-SUCH-LEAD", "--to", "demo"], 1, "no lead NO-SUCH-LEAD"),
            (["lead", "stage", "--db", db, "--id", lead, "--to", "closed"], 64, "--to is one of"),
            (["lead", "stage", "--db", db, "--id", lead, "--to", "demo"], 1, "cannot move to demo; it can move to needs-confirmed or lost"),
            (["lead", "stage", "--db", db, "--id", lead, "--to", "won"], 1, "cannot move to won"),
            (["lead", "update", "--db", db, "--id", "NO-SUCH-LEAD", "--score", "5"], 1, "no lead NO-SUCH-LEAD"),
            (["lead", "update", "--db", db, "--id", lead], 64, "give at least one of"),
            (["lead", "update", "--db", db, "--id", lead, "--phone", "call me maybe"], 64, "--phone must be"),
            (["lead", "add", "--db", db, "--name", "Zhao", "--phone", "12ab34567"], 64, "--phone must be"),
            (["lead", "add", "--db", db, "--name", "Zhao", "--phone", "13900000002", "--score", "101"], 64, "--score must be"),
            (["lead", "add", "--db", db, "--name", "Zhao", "--phone", "13900000002", "--score", "high"], 64, "--score must be a whole number"),
            (["lead", "add", "--db", db, "--phone", "13900000002"], 64, "missing --name"),
            (["lead", "list", "--db", db, "--grade", "Z"], 64, "--grade is A, B or C"),
            (["lead", "promote", "--db", db], 64, "unknown lead command promote"),
            (["stock", "sale", "--db", db, "--sku", "K1", "--qty", "-3"], 64, "--qty must be"),
            (["stock", "receive", "--db", db, "--sku", "K1", "--qty", "0"], 64, "--qty must be"),
            (["stock", "count", "--db", db, "--sku", "K1", "--qty", "-1"], 64, "--qty must be"),
            (["stock", "adjust", "--db", db, "--sku", "K1", "--qty", "0"], 64, "--qty must be"),
            (["stock", "sale", "--db", db, "--sku", "K 1", "--qty", "1"], 64, "--sku must be"),
            (["stock", "show", "--db", db, "--sku", "K/1"], 64, "--sku must be"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "1", "--amount", "12.345"], 64, "--amount must be"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "1", "--amount", "-5"], 64, "--amount must be"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "1", "--amount", "1e3"], 64, "--amount must be"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "-1", "--amount", "5"], 64, "--qty must be"),
            (["sale", "record", "--db", db, "--guide", "G1", "--sku", "K1", "--qty", "1", "--amount", "5", "--lead", "NOPE"], 1, "no lead NOPE"),
            (["visit", "log", "--db", db, "--guide", "G1", "--lead", "NOPE"], 1, "no lead NOPE"),
            (["visit", "log", "--db", db, "--guide", "G1", "--duration-min", "-5"], 64, "--duration-min must be"),
            (["visit", "log", "--db", db, "--lead", lead], 64, "missing --guide"),
            (["store", "add", "--db", db, "--id", "S2", "--region", "east", "--lat", "31", "--lon", "121"], 1, "reference data is kept on a hub"),
            (["promotions", "--db", hub], 1, "guide commands run on a store's terminal replica"),
        ]
        for (arguments, status, message) in cases {
            let file = arguments.contains(hub) ? "hub.sqlite" : "t1.sqlite"
            let before = try state(file)
            let outcome = try storesync(arguments, expect: status)
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments.joined(separator: " ")): \(outcome.stderr)")
            XCTAssertFalse(outcome.stderr.contains("Li Mei") || outcome.stderr.contains("0013"), "no personal data in \(outcome.stderr)")
            XCTAssertEqual(try state(file), before, "\(arguments.joined(separator: " ")) changed the replica")
        }

        let operatorCases: [(arguments: [String], status: Int32, message: String)] = [
            (["store", "add", "--db", hub, "--id", "S2", "--region", "west", "--lat", "31", "--lon", "121"], 1, "this hub serves region east"),
            (["store", "add", "--db", hub, "--id", "S2", "--region", "east", "--lat", "91", "--lon", "121"], 64, "--lat must be"),
            (["store", "add", "--db", hub, "--id", "S2", "--region", "east", "--lat", "north", "--lon", "121"], 64, "--lat must be decimal degrees"),
            (["store", "add", "--db", hub, "--id", "S 2", "--region", "east", "--lat", "31", "--lon", "121"], 64, "--id must be"),
            (["threshold", "set", "--db", hub, "--store", "S9", "--sku", "K1", "--min", "5"], 1, "store S9 is not registered"),
            (["threshold", "set", "--db", hub, "--store", "S1", "--sku", "K1", "--min", "-5"], 64, "--min must be"),
            (["threshold", "set", "--db", db, "--store", "S1", "--sku", "K1", "--min", "5"], 1, "reference data is kept on a hub"),
        ]
        for (arguments, status, message) in operatorCases {
            let file = arguments.contains(hub) ? "hub.sqlite" : "t1.sqlite"
            let before = try state(file)
            let outcome = try storesync(arguments, expect: status)
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments.joined(separator: " ")): \(outcome.stderr)")
            XCTAssertEqual(try state(file), before, "\(arguments.joined(separator: " ")) changed the replica")
        }
        XCTAssertEqual(try output(["threshold", "set", "--db", hub, "--store", "S1", "--sku", "K1", "--min", "5"]), "S1/K1")
        XCTAssertEqual(try query("hub.sqlite", "SELECT store, sku, min_quantity FROM thresholds"), [[.text("S1"), .text("K1"), .integer(5)]])
    }

    /// A hub process with the rules: a promotion reaches the nearby store that has the SKU, a
    /// concurrent close stands, and two offline entries of one customer are linked.
    func testTheHubRunsTheCentralRules() throws {
        let hubDB = path("hub.sqlite")
        try storesync(["init", "--db", hubDB, "--hub", "--region", "east"])
        for (store, latitude) in [("S1", "31.2304"), ("S2", "31.2404"), ("S3", "31.2504")] {
            XCTAssertEqual(try output(["store", "add", "--db", hubDB, "--id", store, "--region", "east", "--lat", latitude,
                                       "--lon", "121.4737", "--name", "Store \(store)"]), store)
        }
        try storesync(["threshold", "set", "--db", hubDB, "--store", "S1", "--sku", "K1", "--min", "5"])
        let hub = try HubProcess(["--db", hubDB, "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hub.log"))
        defer {
            hub.signal(SIGTERM)
            _ = try? hub.waitForExit()
        }
        let terminals = ["a": "S1", "b": "S1", "c": "S2", "d": "S3"]
        for (name, store) in terminals.sorted(by: { $0.key < $1.key }) {
            try storesync(["init", "--db", path("\(name).sqlite"), "--terminal", "--store", store])
        }
        func db(_ name: String) -> String { path("\(name).sqlite") }
        func sync(_ name: String) throws { try storesync(["sync", "--db", db(name), "--hub", hub.address]) }

        // Stock: S2 has K1, S3 has none; S1 sells below its threshold of 5.
        try storesync(["stock", "count", "--db", db("c"), "--sku", "K1", "--qty", "20"])
        try storesync(["stock", "count", "--db", db("d"), "--sku", "K1", "--qty", "0"])
        try storesync(["stock", "count", "--db", db("a"), "--sku", "K1", "--qty", "10"])
        for name in ["c", "d", "a"] { try sync(name) }
        try storesync(["sale", "record", "--db", db("a"), "--guide", "G1", "--sku", "K1", "--qty", "7", "--amount", "69.93"])
        try sync("a")
        try sync("c")
        let suggestions = try XCTUnwrap(try json(["promotions", "--db", db("c")]) as? [[String: Any]])
        XCTAssertEqual(suggestions.count, 1)
        XCTAssertEqual(suggestions.first?["source_store"] as? String, "S1")
        XCTAssertEqual(suggestions.first?["stock_at_crossing"] as? Int, 3)
        try sync("d")
        XCTAssertEqual(try XCTUnwrap(try json(["promotions", "--db", db("d")]) as? [Any]).count, 0, "S3 has none in stock")
        try sync("a")
        XCTAssertEqual(try XCTUnwrap(try json(["stock", "show", "--db", db("a"), "--sku", "K1"]) as? [[String: Any]]).first?["below_threshold"] as? Bool, true)

        // Funnel: b closes a lead as lost that a had moved on meanwhile: lost may end any open
        // stage, so it stands; a closed lead moves no more.
        let lead = try output(["lead", "add", "--db", db("a"), "--name", "Li Mei", "--phone", "+86 138 0013 8000", "--score", "88"])
        try sync("a")
        try sync("b")
        try storesync(["lead", "stage", "--db", db("a"), "--id", lead, "--to", "needs-confirmed"])
        try storesync(["lead", "stage", "--db", db("a"), "--id", lead, "--to", "demo"])
        try sync("a")
        try storesync(["lead", "stage", "--db", db("b"), "--id", lead, "--to", "lost"])
        try storesync(["lead", "stage", "--db", db("b"), "--id", lead, "--to", "needs-confirmed"], expect: 1)
        try sync("b")
        let afterSync = try XCTUnwrap(try json(["lead", "list", "--db", db("b")]) as? [[String: Any]])
        XCTAssertEqual(afterSync.first { $0["id"] as? String == lead }?["stage"] as? String, "lost",
                       "lost may end any open stage: b's later close stands")

        // Duplicates: two terminals enter the same customer offline.
        let first = try output(["lead", "add", "--db", db("b"), "--name", "Zhao Min", "--phone", "+86 137 0000 0002"])
        let second = try output(["lead", "add", "--db", db("a"), "--name", "Zhao Min", "--phone", "0086 137-0000-0002"])
        try storesync(["visit", "log", "--db", db("a"), "--guide", "G1", "--lead", second])
        try sync("b")
        try sync("a")
        // A one-shot sync pulls while its push merges: what the rules made of the push comes next time.
        try sync("b")
        try sync("a")
        for name in ["a", "b"] {
            let leads = try XCTUnwrap(try json(["lead", "list", "--db", db(name)]) as? [[String: Any]])
            XCTAssertEqual(leads.first { $0["id"] as? String == second }?["duplicate_of"] as? String, first, "\(name): b's entry came first")
            XCTAssertEqual(leads.first { $0["id"] as? String == first }?["visits"] as? Int, 1, "\(name): the duplicate's visit counts")
        }
        XCTAssertTrue(hub.log.contains("central rules wrote"), hub.log)
        XCTAssertFalse(hub.log.contains("Li Mei") || hub.log.contains("0013") || hub.log.contains("Zhao"), "no personal data in the hub's log")
    }

    /// A stale move is corrected and the correction reaches the terminal that made it.
    func testAStaleStageChangeIsCorrectedOnTheTerminalThatMadeIt() throws {
        let hubDB = path("hub.sqlite")
        try storesync(["init", "--db", hubDB, "--hub", "--region", "east"])
        try storesync(["store", "add", "--db", hubDB, "--id", "S1", "--region", "east", "--lat", "31.2", "--lon", "121.5"])
        let hub = try HubProcess(["--db", hubDB, "--listen", "127.0.0.1:0"], logURL: directory.appendingPathComponent("hub.log"))
        defer {
            hub.signal(SIGTERM)
            _ = try? hub.waitForExit()
        }
        for name in ["a", "b"] { try storesync(["init", "--db", path("\(name).sqlite"), "--terminal", "--store", "S1"]) }
        func sync(_ name: String) throws { try storesync(["sync", "--db", path("\(name).sqlite"), "--hub", hub.address]) }
        let lead = try output(["lead", "add", "--db", path("a.sqlite"), "--name", "Li Mei", "--phone", "+86 138 0013 8000"])
        try sync("a")
        try sync("b")
        for stage in ["needs-confirmed", "demo", "negotiation"] {
            try storesync(["lead", "stage", "--db", path("a.sqlite"), "--id", lead, "--to", stage])
        }
        try sync("a")
        // b has not pulled since: it moves the lead one step from where it last saw it.
        try storesync(["lead", "stage", "--db", path("b.sqlite"), "--id", lead, "--to", "needs-confirmed"])
        try sync("b")
        // A one-shot sync pulls while its push merges: the correction of the push comes next time.
        try sync("b")
        let leads = try XCTUnwrap(try json(["lead", "list", "--db", path("b.sqlite")]) as? [[String: Any]])
        XCTAssertEqual(leads.first?["stage"] as? String, "negotiation", "the hub's correction flowed back to b")
        XCTAssertEqual(try query("hub.sqlite", "SELECT action, subject_id FROM rule_reviews"),
                       [[.text("stage_regress_refused"), .text(lead)]])
        try storesync(["lead", "stage", "--db", path("b.sqlite"), "--id", lead, "--to", "won"])
    }
}
