import Foundation
import Hub
import Logging
import Net
import Retail
import RetailHub
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

/// A retail hub with the schema on its push path, over loopback: every hostile row found by
/// probing a hub (issue 11) gets INVALID_VALUE naming table, column and reason, never the value;
/// nothing of the batch is written; and the hub goes on serving an honest terminal, whose
/// sales, views and all, come out right.
final class HubValidationTests: XCTestCase {
    private struct NoHelloAck: Error { var answer: MessageType }

    private final class Fixture {
        let directory: URL
        let hub: Replica
        let server: HubServer
        let logs = MemorySink()

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("retail-hub-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            hub = try Replica(path: directory.appendingPathComponent("hub.sqlite").path, schema: RetailSchema.all)
            var configuration = HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0"))
            configuration.widestTableColumns = RetailSchema.widestTableColumns
            configuration.pushValidator = RetailPushValidator()
            server = try HubServer(replica: hub, configuration: configuration,
                                   views: RetailViewProvider(reader: try hub.makeReader(), clock: hub.clock),
                                   logger: Logger(label: "hub", minimumLevel: .debug, sink: logs))
            server.start()
        }

        deinit {
            server.stop()
            try? FileManager.default.removeItem(at: directory)
        }

        var logger: Logger { Logger(label: "test", minimumLevel: .debug, sink: logs) }

        func terminal(_ name: String) throws -> Replica {
            try Replica(path: directory.appendingPathComponent("\(name).sqlite").path, schema: RetailSchema.all)
        }

        func options() -> SyncOptions {
            var options = SyncOptions(hub: server.boundAddress, scope: "store:S1")
            options.widestTableColumns = RetailSchema.widestTableColumns
            options.replyTimeout = .seconds(20)
            return options
        }

        /// Opens a session as `replica` and returns the client after HELLO_ACK.
        func session(_ replica: ReplicaID, role: Role = .terminal) throws -> BlockingFramedClient {
            let client = try BlockingFramedClient(connectingTo: server.boundAddress, timeout: .seconds(10), logger: logger)
            try client.send(.hello(Hello(protocolVersions: [1], replica: replica, role: role, scope: role == .terminal ? "store:S1" : "region:east",
                                         clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [])))
            let answer = try client.receive(timeout: .seconds(20))
            guard case .helloAck = answer else { throw NoHelloAck(answer: answer.type) }
            return client
        }

        /// Pushes `changeset` as its source and returns the hub's answer.
        func push(_ changeset: Changeset) throws -> Message {
            let client = try session(changeset.source)
            try client.send(.push(changeset))
            return try client.receive(timeout: .seconds(20))
        }

        func count(_ table: String) throws -> Int64 {
            try hub.read { try $0.fetchScalar("SELECT count(*) FROM \(table)")?.integerValue ?? -1 }
        }
    }

    private static let now = Value.integer(Int64(systemWallClock()))

    /// The rows a probe pushed, each written into a terminal's file under the engine (so they
    /// travel exactly as an old or tampered terminal would push them).
    private func hostileWrites() -> [(name: String, secret: String?, table: String, column: String, write: (WriteTransaction) throws -> Void)] {
        let sale: (Value, Value) -> (WriteTransaction) throws -> Void = { amount, quantity in
            { tx in
                try tx.insert(into: RetailSchema.sales.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("guide"): .text("G1"), column("sku"): .text("K1"),
                    column("quantity"): quantity, column("amount_cents"): amount, column("at_ms"): Self.now,
                ])
            }
        }
        let lead: (String) -> (WriteTransaction) throws -> Void = { name in
            { tx in
                try tx.insert(into: RetailSchema.leads.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("customer_name"): .text(name), column("grade"): .text("C"),
                    column("stage"): .text("reached"), column("created_ms"): Self.now,
                ])
            }
        }
        return [
            ("amount 2^63-1, quantity -5", nil, "sales", "quantity", sale(.integer(.max), .integer(-5))),
            ("amount 'not a number', quantity 2.5", "not a number", "sales", "quantity", sale(.text("not a number"), .real(2.5))),
            ("amount 2^63-1", nil, "sales", "amount_cents", sale(.integer(.max), .integer(1))),
            ("a 4 MiB customer name", "Wang Fang", "leads", "customer_name", lead(String(repeating: "Wang Fang ", count: 400_000))),
            ("a stage outside the funnel", nil, "leads", "stage", { tx in
                try tx.insert(into: RetailSchema.leads.name, primaryKey: UniqueID.make(), [
                    column("store"): .text("S1"), column("grade"): .text("C"), column("stage"): .text("won!"), column("created_ms"): Self.now,
                ])
            }),
        ]
    }

    private func expectInvalidValue(_ answer: Message, table: String, column: String, secret: String?, _ name: String) {
        guard case .error(let error) = answer else { return XCTFail("\(name): expected ERROR, got \(answer.type)") }
        XCTAssertEqual(error.code, .invalidValue, "\(name): \(error.message)")
        XCTAssertEqual(error.code.rawValue, 41)
        XCTAssertTrue(error.message.contains("\(table).\(column)"), "\(name): \(error.message)")
        if let secret { XCTAssertFalse(error.message.contains(secret), "\(name): the value is echoed") }
        XCTAssertLessThan(error.message.utf8.count, 300, name)
    }

    func testHostileRowsGetInvalidValueNothingIsWrittenAndHonestTerminalsSync() throws {
        let fixture = try Fixture()
        for (index, bad) in hostileWrites().enumerated() {
            let terminal = try fixture.terminal("bad-\(index)")
            // An honest row first: the whole batch is refused, not just the bad row.
            _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 1, amountCents: 100, lead: nil, store: "S1",
                                             in: terminal, now: Int64(systemWallClock()))
            try terminal.write(bad.write)
            let answer = try fixture.push(try terminal.changes(since: 0, onlyLocalWrites: true))
            expectInvalidValue(answer, table: bad.table, column: bad.column, secret: bad.secret, bad.name)
            XCTAssertEqual(try fixture.hub.cursor(for: terminal.id).received, 0, "\(bad.name): the cursor moved")
        }

        // The probe's lead: 3 of its 15 columns, crafted by hand (the engine never sends a live row so).
        let probe = ReplicaID.random()
        let version = Version(hlc: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), origin: probe)
        let partial = Changeset(source: probe, fromSequence: 0, toSequence: 1, tables: [
            TableChanges(table: RetailSchema.leads.name, columns: [column("store"), column("customer_name"), column("phone")], rows: [
                RowChange(primaryKey: UniqueID.make(), causalLength: 1, lifeVersion: version, cells: [
                    Cell(column: 0, value: .text("S1"), version: version), Cell(column: 1, value: .text("Zhou Jie"), version: version),
                    Cell(column: 2, value: .text("13800138000"), version: version),
                ]),
            ]),
        ])
        expectInvalidValue(try fixture.push(partial), table: "leads", column: "grade", secret: "Zhou", "3 of 15 columns")

        // A terminal of an older version goes through its sync agent: the refusal is a typed failure.
        let old = try fixture.terminal("old")
        try old.write(hostileWrites()[0].write)
        XCTAssertThrowsError(try SyncClient(replica: old, options: fixture.options(), logger: fixture.logger).syncOnce()) { error in
            XCTAssertEqual((error as? SyncFailure)?.code, .invalidValue, "\(error)")
        }

        for table in ["sales", "leads", "inventory_signals"] {
            XCTAssertEqual(try fixture.count(table), 0, "\(table): a refused batch was written")
        }

        // The hub keeps serving an honest terminal.
        let honest = try fixture.terminal("honest")
        let at = Int64(systemWallClock())
        let lead = try Leads.add(LeadDraft(customerName: "Li Mei", phone: "+86 138 0013 8000", score: 90), store: "S1", in: honest, now: at)
        _ = try FieldActivity.recordSale(guide: "G1", sku: "K1", quantity: 2, amountCents: 12_345, lead: lead, store: "S1", in: honest, now: at)
        _ = try FieldActivity.logVisit(VisitDraft(guide: "G1", lead: lead, durationMinutes: 10), store: "S1", in: honest, now: at)
        let report = try SyncClient(replica: honest, options: fixture.options(), logger: fixture.logger).syncOnce()
        XCTAssertGreaterThan(report.pushedRows, 0)
        XCTAssertEqual(try fixture.count("sales"), 1)
        XCTAssertEqual(try fixture.count("leads"), 1)

        // And its views answer, with the honest sale only.
        let analyst = try fixture.session(.random(), role: .hub)
        try analyst.send(.viewRequest(ViewRequest(requestID: 1, view: "sales", parameters: [ViewParameter(name: "by", value: "store")])))
        guard case .viewRows(let rows) = try analyst.receive(timeout: .seconds(20)) else { return XCTFail("no VIEW_ROWS") }
        XCTAssertEqual(rows.rows, [[.text("S1"), .text("123.45"), .integer(2), .integer(1)]])
    }

    /// A known view asked with a bad parameter is BAD_VIEW_PARAMETER (43), naming what is wrong;
    /// an unknown view stays UNKNOWN_VIEW; the hub answers the next good request.
    func testAKnownViewWithABadParameterGetsBadViewParameter() throws {
        let fixture = try Fixture()
        func ask(_ view: String, _ parameters: [(String, String)]) throws -> Message {
            let analyst = try fixture.session(.random(), role: .hub)
            try analyst.send(.viewRequest(ViewRequest(requestID: 1, view: view,
                                                      parameters: parameters.map { ViewParameter(name: $0.0, value: $0.1) })))
            return try analyst.receive(timeout: .seconds(20))
        }
        let bad: [(parameters: [(String, String)], says: String)] = [
            ([("by", "month")], "by is one of"),
            ([("from", "2026-13-01")], "from must be a date"),
            ([("to", "yesterday")], "to must be a date"),
            ([("from", "2026-03-02"), ("to", "2026-03-01")], "to is before from"),
            ([("colour", "red")], "unknown parameter"),
        ]
        for (parameters, says) in bad {
            guard case .error(let error) = try ask("sales", parameters) else { return XCTFail("\(parameters): no ERROR") }
            XCTAssertEqual(error.code, .badViewParameter, "\(parameters): \(error.message)")
            XCTAssertEqual(error.code.rawValue, 43)
            XCTAssertTrue(error.message.contains(says), "\(parameters): \(error.message)")
        }
        guard case .error(let unknown) = try ask("salse", [("by", "store")]) else { return XCTFail("unknown view: no ERROR") }
        XCTAssertEqual(unknown.code, .unknownView, unknown.message)
        guard case .viewRows(let rows) = try ask("sales", [("by", "region"), ("from", "2026-03-01")]) else {
            return XCTFail("a good request after the refusals got no VIEW_ROWS")
        }
        XCTAssertTrue(rows.final)
    }
}
