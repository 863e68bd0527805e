import Foundation
import Hub
import Logging
import Net
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

/// Terminals and a hub over real loopback sockets.
final class HubSyncTests: XCTestCase {
    private func randomWrites(_ replica: Replica, count: Int, random: inout SplitMix64) throws {
        for _ in 0..<count {
            let leads = try replica.read { db in try db.fetchAll("SELECT id FROM leads").compactMap { $0[0].textValue } }
            switch Int.random(in: 0..<6, using: &random) {
            case 0, 1:
                let key = "L\(Int.random(in: 0..<30, using: &random))"
                do {
                    try replica.write { tx in
                        try tx.insert(into: HubTestSchema.leads, primaryKey: key,
                                      [HubTestSchema.column("name"): .text("n\(key)"), HubTestSchema.column("stage"): .text("reached")])
                    }
                } catch SyncError.rowExists {}
            case 2, 3:
                guard let key = leads.randomElement(using: &random) else { continue }
                let stage = ["demo", "negotiation", "won", "lost"].randomElement(using: &random) ?? "demo"
                try replica.write { try $0.update(HubTestSchema.leads, primaryKey: key, set: [HubTestSchema.column("stage"): .text(stage)]) }
            case 4:
                guard let key = leads.randomElement(using: &random) else { continue }
                try replica.write { try $0.delete(from: HubTestSchema.leads, primaryKey: key) }
            default:
                try replica.write { tx in
                    try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                                  [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(Int64.random(in: 1...60, using: &random))])
                }
            }
        }
    }

    func testTerminalsWithOfflineWritesConvergeThroughTheHub() throws {
        let fixture = try HubFixture { $0.maxBatchCells = 40 }   // small batches: many PUSH/PULL rounds
        var random = SplitMix64(seed: 2024)
        let terminals = try (0..<5).map { try fixture.makeTerminal("t\($0)") }
        for round in 0..<3 {
            for terminal in terminals { try randomWrites(terminal, count: 25, random: &random) }
            for terminal in terminals.shuffled(using: &random) {
                let report = try fixture.sync(terminal)
                XCTAssertEqual(try fixture.hubReplica.cursor(for: terminal.id).received, report.pushCursor, "round \(round)")
            }
        }
        // Everyone pulls what the others pushed last.
        for terminal in terminals { _ = try fixture.sync(terminal) }
        let reference = try fixture.hubReplica.canonicalDump(includeVersions: true)
        XCTAssertFalse(reference.isEmpty)
        for (index, terminal) in terminals.enumerated() {
            let dump = try terminal.canonicalDump(includeVersions: true)
            XCTAssertTrue(dump == reference, "terminal \(index) differs from the hub: \(firstDifference(dump, reference))")
            if dump != reference, ProcessInfo.processInfo.environment["STORESYNC_TEST_LOGS"] != nil {
                print("TERMINAL\n" + dump + "\nHUB\n" + reference)
            }
        }
        // Rows the last pulls touched go back once (they hold the terminal's own cells; the hub
        // ignores them); after that a sync moves nothing.
        _ = try fixture.sync(terminals[0])
        let quiet = try fixture.sync(terminals[0])
        XCTAssertEqual(quiet.pushedRows, 0)
        XCTAssertEqual(quiet.changedRows, 0)
    }

    func testLiveTerminalsReceiveEachOthersWritesWithoutPolling() throws {
        let fixture = try HubFixture()
        let a = try fixture.makeTerminal("a"), b = try fixture.makeTerminal("b")
        let logger = Logger(label: "live", minimumLevel: .debug, sink: fixture.logs)
        let agentA = LiveSyncAgent(replica: a, options: fixture.options(), logger: logger)
        let agentB = LiveSyncAgent(replica: b, options: fixture.options(), logger: logger)
        agentA.start(); agentB.start()
        defer { agentA.stop(); agentB.stop() }

        try a.write { try $0.insert(into: HubTestSchema.leads, primaryKey: "LIVE1", [HubTestSchema.column("name"): .text("x")]) }
        agentA.localWriteCommitted()
        try waitUntil("b receives a's write") {
            try b.read { try $0.fetchScalar("SELECT count(*) FROM leads WHERE id = 'LIVE1'") } == .integer(1)
        }
        try b.write { try $0.update(HubTestSchema.leads, primaryKey: "LIVE1", set: [HubTestSchema.column("stage"): .text("demo")]) }
        agentB.localWriteCommitted()
        try waitUntil("a receives b's edit") {
            try a.read { try $0.fetchScalar("SELECT stage FROM leads WHERE id = 'LIVE1'") } == .text("demo")
        }
    }

    func testALiveAgentReconnectsAfterTheHubRestarts() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let hubReplica = try Replica(path: directory.appendingPathComponent("hub.sqlite").path, schema: HubTestSchema.tables)
        var configuration = HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0"))
        configuration.widestTableColumns = 4
        let logs = MemorySink()
        var server: HubServer? = try HubServer(replica: hubReplica, configuration: configuration, logger: Logger(label: "hub", sink: logs))
        server?.start()
        let port = try XCTUnwrap(server?.boundAddress.port)
        let terminal = try Replica(path: directory.appendingPathComponent("t.sqlite").path, schema: HubTestSchema.tables)
        var options = SyncOptions(hub: try SocketAddress.parse("127.0.0.1:\(port)"), scope: "store:S1")
        options.widestTableColumns = 4
        var backoff = LiveSyncAgent.Backoff()
        backoff.initial = .milliseconds(20)
        backoff.maximum = .milliseconds(200)
        let agent = LiveSyncAgent(replica: terminal, options: options, backoff: backoff, logger: Logger(label: "t", sink: logs))
        agent.start()
        defer { agent.stop() }

        try terminal.write { try $0.insert(into: HubTestSchema.leads, primaryKey: "R1", [HubTestSchema.column("name"): .text("before")]) }
        agent.localWriteCommitted()
        try waitUntil("the hub has R1") { try hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM leads") } == .integer(1) }

        server?.stop()
        server = nil
        try terminal.write { try $0.insert(into: HubTestSchema.leads, primaryKey: "R2", [HubTestSchema.column("name"): .text("offline")]) }
        configuration.listenAddress = try SocketAddress.parse("127.0.0.1:\(port)")
        server = try HubServer(replica: hubReplica, configuration: configuration, logger: Logger(label: "hub", sink: logs))
        server?.start()
        defer { server?.stop() }
        try waitUntil("the hub gets the write made while it was down") {
            try hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM leads") } == .integer(2)
        }
    }
}

/// The first line where two dumps differ, instead of both dumps whole.
func firstDifference(_ left: String, _ right: String) -> String {
    let a = left.split(separator: "\n", omittingEmptySubsequences: false)
    let b = right.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(a.count, b.count) {
        let x = index < a.count ? String(a[index]) : "<end>"
        let y = index < b.count ? String(b[index]) : "<end>"
        if x != y { return "line \(index + 1): \(x)  vs  \(y)" }
    }
    return "no difference"
}
