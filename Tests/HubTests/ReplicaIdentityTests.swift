import Foundation
import Hub
import Logging
import Net
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

/// Protocol version 2's lease (PROTOCOL.md §7.3): a replica id presented by two databases is
/// refused with REPLICA_CONFLICT, never silently merged; no write is lost on the way.
final class ReplicaIdentityTests: XCTestCase {
    private func addVisit(_ replica: Replica, _ key: String) throws {
        try replica.write { tx in
            try tx.insert(into: HubTestSchema.visits, primaryKey: key,
                          [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(5)])
        }
    }

    private func hubHasVisit(_ fixture: HubFixture, _ key: String) throws -> Bool {
        try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE id = ?", [.text(key)]) } == .integer(1)
    }

    /// The terminal's stored lease (the settings the client keeps, PROTOCOL.md §7.3).
    private func storedLease(_ terminal: Replica, hub: ReplicaID) throws -> [UInt8] {
        guard case .blob(let lease)? = try terminal.setting("lease:\(hub)") else { return [] }
        return lease
    }

    /// The finding: a second session with a terminal's replica id pushed an empty batch
    /// from 2 to 1,000,002, the hub acknowledged it, and the terminal's next sync pushed 0 rows.
    /// Now the impostor is refused whatever version it speaks, and the terminal's write arrives.
    func testAnImpostorWithATerminalsReplicaIDIsRefusedAndNoWriteIsLost() throws {
        let fixture = try HubFixture()
        let terminal = try fixture.makeTerminal("t")
        try addVisit(terminal, "v1")
        _ = try fixture.sync(terminal)
        XCTAssertTrue(try hubHasVisit(fixture, "v1"))
        let cursorBefore = try fixture.hubReplica.cursor(for: terminal.id).received

        let impostorAttempts: [(String, Message)] = [
            ("version 1 (cannot present a lease)", BadClient.hello(terminal.id, versions: [1])),
            ("version 2 with no lease", BadClient.hello(terminal.id, versions: [2, 1])),
            ("version 2 with a made-up lease", .hello(Hello(protocolVersions: [2], replica: terminal.id, role: .terminal, scope: "store:S1",
                                                           clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [],
                                                           lease: [UInt8](repeating: 0x42, count: 16)))),
        ]
        for (name, hello) in impostorAttempts {
            let impostor = try RawClient(port: fixture.address.port)
            try impostor.send(hello)
            // It would push an empty batch far past the terminal's cursor, if it got that far.
            try? impostor.send(.push(Changeset(source: terminal.id, fromSequence: 2, toSequence: 1_000_002, tables: [])))
            let answer = try BadClient.serverAnswer(impostor)
            BadClient.expectErrorAndClose(answer, .replicaConflict, "impostor, \(name)")
            XCTAssertFalse(answer.messages.contains { $0.type == .helloAck || $0.type == .pushAck }, name)
            if case .error(let error)? = answer.messages.last {
                XCTAssertTrue(error.message.contains("storesync reidentify"), "the message says what to do: \(error.message)")
            }
        }
        XCTAssertEqual(try fixture.hubReplica.cursor(for: terminal.id).received, cursorBefore, "no impostor moved the cursor")

        try addVisit(terminal, "v2")
        let report = try fixture.sync(terminal)
        XCTAssertEqual(report.pushedRows, 1)
        XCTAssertTrue(try hubHasVisit(fixture, "v2"), "the terminal's write reached the hub")
    }

    /// A clone of a terminal's file (a copied disk, a restored backup): whichever of the two
    /// syncs second is refused with REPLICA_CONFLICT, pushes nothing, and keeps its writes.
    func testACloneIsRefusedAndKeepsItsWrites() throws {
        let fixture = try HubFixture()
        let original = try fixture.makeTerminal("original")
        try addVisit(original, "before-copy")
        _ = try fixture.sync(original)
        // A disk-image clone: the main file copied byte for byte once the WAL is merged into it.
        let clonePath = fixture.directory.appendingPathComponent("clone.sqlite").path
        try original.checkpoint()
        try FileManager.default.copyItem(atPath: original.path, toPath: clonePath)
        let clone = try Replica(path: clonePath, schema: HubTestSchema.tables)
        XCTAssertEqual(clone.id, original.id)

        try addVisit(original, "original-after")
        try addVisit(clone, "clone-after")
        _ = try fixture.sync(original)
        XCTAssertThrowsError(try fixture.sync(clone)) { error in
            let failure = error as? SyncFailure
            XCTAssertEqual(failure?.kind, .replicaConflict, "\(error)")
            XCTAssertEqual(failure?.code, .replicaConflict)
            XCTAssertEqual(failure?.isPermanent, true)
        }
        XCTAssertTrue(try hubHasVisit(fixture, "original-after"))
        XCTAssertFalse(try hubHasVisit(fixture, "clone-after"), "the refused clone pushed nothing")
        XCTAssertEqual(try clone.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE id = 'clone-after'") }, .integer(1),
                       "the clone's write is still there, for after `storesync reidentify`")
        // The original keeps syncing.
        try addVisit(original, "original-later")
        _ = try fixture.sync(original)
        XCTAssertTrue(try hubHasVisit(fixture, "original-later"))
    }

    /// A hub that holds more of a replica's changes than the replica wrote (an impostor got in
    /// before the terminal ever had a lease, over version 1): the terminal stops with
    /// REPLICA_CONFLICT instead of "pushed 0 rows", and its write stays local, not skipped.
    func testAPushCursorAboveOurOwnLatestSequenceStopsTheClient() throws {
        let fixture = try HubFixture()
        let terminal = try fixture.makeTerminal("t")
        let impostor = try RawClient(port: fixture.address.port)
        try impostor.send(BadClient.hello(terminal.id, versions: [1]))
        guard case .helloAck? = try impostor.receive() else { return XCTFail("a version 1 first contact is accepted") }
        try impostor.send(.push(Changeset(source: terminal.id, fromSequence: 0, toSequence: 1_000_002, tables: [])))
        XCTAssertEqual(try impostor.receive(), .pushAck(acknowledgedSequence: 1_000_002))

        try addVisit(terminal, "v1")
        XCTAssertThrowsError(try fixture.sync(terminal)) { error in
            XCTAssertEqual((error as? SyncFailure)?.kind, .replicaConflict, "\(error)")
            XCTAssertTrue("\(error)".contains("reidentify"), "\(error)")
        }
        XCTAssertEqual(try terminal.read { try $0.fetchScalar("SELECT count(*) FROM visits") }, .integer(1))
        XCTAssertEqual(try terminal.setting("lease:\(fixture.hubReplica.id)"), nil, "nothing stored from a refused handshake")
    }

    /// A client that crashes between HELLO_ACK and storing its new lease presents the previous
    /// one (or none) at its next HELLO, and is accepted (PROTOCOL.md §7.3).
    func testACrashBeforeStoringTheLeaseStillReconnects() throws {
        let fixture = try HubFixture()
        let terminal = try fixture.makeTerminal("t")
        let hubID = fixture.hubReplica.id

        // First contact: HELLO_ACK with a lease, then the "crash" (nothing sent, nothing stored).
        let first = try RawClient(port: fixture.address.port)
        try first.send(BadClient.hello(terminal.id, versions: [2, 1]))
        guard case .helloAck(let ack)? = try first.receive() else { return XCTFail("no HELLO_ACK") }
        XCTAssertEqual(ack.protocolVersion, 2)
        XCTAssertEqual(ack.lease?.count, 16)
        XCTAssertEqual(ack.maxClockDriftMilliseconds, UInt32(fixture.hubReplica.clock.maxForwardDriftMilliseconds))
        first.shutdownWrite()
        _ = first.readUntilEndOfStream()

        try addVisit(terminal, "v1")
        _ = try fixture.sync(terminal)
        XCTAssertTrue(try hubHasVisit(fixture, "v1"))
        let held = try storedLease(terminal, hub: hubID)
        XCTAssertEqual(held.count, 16)
        XCTAssertEqual(fixture.server.lease(of: terminal.id)?.current, held)
        XCTAssertEqual(fixture.server.lease(of: terminal.id)?.confirmed, true)

        // Again with a lease held: HELLO_ACK, crash, reconnect presenting the old one.
        let second = try RawClient(port: fixture.address.port)
        try second.send(.hello(Hello(protocolVersions: [2], replica: terminal.id, role: .terminal, scope: "store:S1",
                                     clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [], lease: held)))
        guard case .helloAck(let again)? = try second.receive() else { return XCTFail("no HELLO_ACK") }
        XCTAssertNotEqual(again.lease, held)
        second.shutdownWrite()
        _ = second.readUntilEndOfStream()
        try addVisit(terminal, "v2")
        _ = try fixture.sync(terminal)
        XCTAssertTrue(try hubHasVisit(fixture, "v2"))
        XCTAssertNotEqual(try storedLease(terminal, hub: hubID), held, "the terminal stored the lease of its last session")
    }

    /// The lease survives a hub restart: it is durable before HELLO_ACK.
    func testLeasesSurviveAHubRestart() throws {
        let fixture = try HubFixture()
        let terminal = try fixture.makeTerminal("t")
        _ = try fixture.sync(terminal)
        let lease = try XCTUnwrap(fixture.server.lease(of: terminal.id))
        fixture.server.stop()
        var configuration = HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0"))
        configuration.widestTableColumns = 4
        let restarted = try HubServer(replica: fixture.hubReplica, configuration: configuration, logger: fixture.logger)
        restarted.start()
        defer { restarted.stop() }
        XCTAssertEqual(restarted.lease(of: terminal.id)?.current, lease.current)
        // A v2 HELLO without the lease is a clone's.
        let impostor = try RawClient(port: restarted.boundAddress.port)
        try impostor.send(BadClient.hello(terminal.id, versions: [2]))
        BadClient.expectErrorAndClose(try BadClient.serverAnswer(impostor), .replicaConflict, "no lease after restart")
        var options = fixture.options()
        options.hub = restarted.boundAddress
        try addVisit(terminal, "after-restart")
        _ = try SyncClient(replica: terminal, options: options, logger: fixture.logger).syncOnce()
        XCTAssertTrue(try hubHasVisit(fixture, "after-restart"))
    }

    /// A new HELLO with a valid lease takes over a live session of the same replica id: the old
    /// one gets SERVER_BUSY (retryable) and is closed, so one id never has two live sessions.
    func testANewSessionWithAValidLeaseTakesOverTheLiveOne() throws {
        let fixture = try HubFixture()
        let id = ReplicaID.random()
        let first = try RawClient(port: fixture.address.port)
        try first.send(BadClient.hello(id, versions: [2]))
        guard case .helloAck(let ack)? = try first.receive(), let lease = ack.lease else { return XCTFail("no HELLO_ACK") }
        try first.send(.ping(nonce: 1))  // confirms the lease
        XCTAssertEqual(try first.receive(), .pong(nonce: 1))

        let second = try RawClient(port: fixture.address.port)
        try second.send(.hello(Hello(protocolVersions: [2], replica: id, role: .terminal, scope: "store:S1",
                                     clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [], lease: lease)))
        guard case .helloAck? = try second.receive() else { return XCTFail("the valid lease is accepted") }
        let answer = try BadClient.serverAnswer(first)
        BadClient.expectErrorAndClose(answer, .serverBusy, "the superseded session")
        if case .error(let error)? = answer.messages.last { XCTAssertNotNil(error.retryAfterMilliseconds) }
        try second.send(.ping(nonce: 2))
        XCTAssertEqual(try second.receive(), .pong(nonce: 2))
    }
}
