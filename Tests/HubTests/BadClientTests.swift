import Foundation
import Glibc
import Hub
import Logging
import Net
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

/// Misbehaving clients over real loopback sockets, each while well-behaved terminals keep
/// writing and syncing: every bad client gets the outcome PROTOCOL.md gives it (an ERROR frame
/// with its code, or a close), and the good terminals converge as if it were not there.
final class BadClientTests: XCTestCase {
    // MARK: Good terminals

    /// Two terminals that write and sync in rounds until `bad` finished (and at least
    /// `minimumRounds` rounds ran, so the bad client overlaps real traffic), then check that
    /// they and the hub hold identical tables with every row written, once.
    private func syncGoodTerminals(_ fixture: HubFixture, while bad: BackgroundTask, minimumRounds: Int = 3,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try fixture.makeTerminal("good-a"), b = try fixture.makeTerminal("good-b")
        var written = 0
        var rounds = 0
        let deadline = Date().addingTimeInterval(60)
        while (rounds < minimumRounds || !bad.isFinished) && Date() < deadline {
            for (terminal, name) in [(a, "a"), (b, "b")] {
                let key = "\(name)-\(rounds)"
                try terminal.write { tx in
                    try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                                  [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(Int64(rounds))])
                    try tx.insert(into: HubTestSchema.leads, primaryKey: key,
                                  [HubTestSchema.column("name"): .text("n\(rounds)"), HubTestSchema.column("stage"): .text("reached")])
                }
                written += 1
                _ = try fixture.sync(terminal)
            }
            rounds += 1
        }
        XCTAssertTrue(bad.isFinished, "the bad client did not finish within the deadline", file: file, line: line)
        _ = try fixture.sync(a)  // a pulls b's last round
        let reference = try fixture.hubReplica.canonicalDump(includeVersions: true)
        for (terminal, name) in [(a, "a"), (b, "b")] {
            let dump = try terminal.canonicalDump(includeVersions: true)
            XCTAssertTrue(dump == reference, "terminal \(name) differs from the hub: \(firstDifference(dump, reference))", file: file, line: line)
            let counts = try terminal.read { db in
                (try db.fetchScalar("SELECT count(*) FROM visits WHERE store = 'S1'")?.integerValue,
                 try db.fetchScalar("SELECT count(*) FROM leads WHERE id LIKE 'a-%' OR id LIKE 'b-%'")?.integerValue)
            }
            XCTAssertEqual(counts.0, Int64(written), "visits on \(name): lost or doubled", file: file, line: line)
            XCTAssertEqual(counts.1, Int64(written), "leads on \(name): lost or doubled", file: file, line: line)
        }
    }

    // MARK: Cases

    func testGarbageBytesGetBadMagicWhileTerminalsSync() throws {
        let fixture = try HubFixture()
        let port = fixture.address.port
        let seed = propertySeed()
        let bad = BackgroundTask("garbage") {
            var random = SplitMix64(seed: seed)
            // A stray HTTP client, then random bytes (first byte not 'S'), each on a fresh connection.
            var payloads = [Array("GET / HTTP/1.1\r\nHost: hub\r\n\r\n".utf8)]
            for _ in 0..<5 {
                var bytes = (0..<Int.random(in: 2...4096, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                if bytes[0] == WireFormat.magic0 { bytes[0] = 0 }
                payloads.append(bytes)
            }
            for (index, payload) in payloads.enumerated() {
                let client = try RawClient(port: port)
                // The server may answer and close before it has read everything we send.
                try? client.write(payload)
                BadClient.expectErrorAndClose(try BadClient.serverAnswer(client), .badMagic, "garbage #\(index) (seed \(seed))")
            }
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
    }

    func testFrameHeaderOverTheCapGetsTooLargeBeforeAnyPayload() throws {
        let fixture = try HubFixture { $0.maxFrameBytes = 1 << 20 }
        let port = fixture.address.port
        let bad = BackgroundTask("too-large") {
            for length: UInt32 in [(1 << 20) + 1, 0x8000_0000, UInt32.max] {
                let client = try RawClient(port: port)
                try client.send(BadClient.hello())
                guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
                // A valid header declaring a huge PUSH and no payload at all: the server must
                // refuse it on the header, not wait for (or allocate) the body.
                var header = WireFormat.frame(type: MessageType.push.rawValue, payload: [])
                withUnsafeBytes(of: length.bigEndian) { header.replaceSubrange(5..<9, with: $0) }
                try client.write(Array(header.prefix(WireFormat.headerSize)))
                BadClient.expectErrorAndClose(try BadClient.serverAnswer(client), .tooLarge, "declared length \(length)")
            }
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
    }

    func testWrongProtocolOrFrameVersionGetsUnsupportedVersion() throws {
        let fixture = try HubFixture()
        let port = fixture.address.port
        let bad = BackgroundTask("versions") {
            // HELLO listing only versions this hub does not speak.
            let client = try RawClient(port: port)
            try client.send(BadClient.hello(versions: [3, 7]))
            let answer = try BadClient.serverAnswer(client)
            BadClient.expectErrorAndClose(answer, .unsupportedVersion, "HELLO with versions 3, 7")
            if case .error(let error)? = answer.messages.last {
                XCTAssertTrue(error.message.contains("1"), "the error lists the versions the hub speaks: \(error.message)")
            }
            XCTAssertFalse(answer.messages.contains { $0.type == .helloAck })

            // A frame of a format this hub does not know.
            let future = try RawClient(port: port)
            var frame = try FrameEncoder().encode(BadClient.hello())
            frame[2] = 2
            try? future.write(frame)
            BadClient.expectErrorAndClose(try BadClient.serverAnswer(future), .unsupportedVersion, "frame format 2")
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
    }

    func testHalfOpenAndSilentConnectionsAreClosedByTheirTimeouts() throws {
        let fixture = try HubFixture {
            $0.handshakeTimeout = .seconds(1)
            $0.idleTimeout = .milliseconds(1_500)
        }
        let port = fixture.address.port
        let bad = BackgroundTask("half-open") {
            // One client sends nothing at all, the other stops in the middle of its HELLO.
            let silent = try RawClient(port: port)
            let partial = try RawClient(port: port)
            try partial.write(Array(try FrameEncoder().encode(BadClient.hello()).prefix(20)))
            for (client, name) in [(silent, "silent"), (partial, "partial HELLO")] {
                let (bytes, endOfStream) = client.readUntilEndOfStream()
                XCTAssertTrue(endOfStream, "\(name): not closed")
                XCTAssertEqual(bytes, [], "\(name): a handshake timeout sends nothing, it closes")
            }
            // A third completes HELLO, then falls silent: the idle timeout (announced to the
            // millisecond, so the client can PING in time) closes it.
            let quiet = try RawClient(port: port)
            try quiet.send(BadClient.hello())
            guard case .helloAck(let ack)? = try quiet.receive() else { return XCTFail("no HELLO_ACK") }
            XCTAssertEqual(ack.limits.idleTimeoutMilliseconds, 1_500)
            let (bytes, endOfStream) = quiet.readUntilEndOfStream()
            XCTAssertTrue(endOfStream, "silent after HELLO: not closed")
            XCTAssertEqual(bytes, [], "an idle timeout sends nothing, it closes")
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
        waitUntil(timeout: 30, "both handshake timeouts are logged") { BadClient.logCount(fixture, "handshake timeout") == 2 }
        waitUntil(timeout: 30, "the idle timeout is logged") { BadClient.logCount(fixture, "idle timeout") == 1 }
    }

    func testAClientThatNeverReadsIsDroppedWithoutHoldingUpOthers() throws {
        let fixture = try HubFixture { $0.maxOutboundBytes = 64 * 1024 }
        let port = fixture.address.port
        let pusher = try fixture.makeTerminal("never-reads")
        try pusher.write { tx in
            try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(), [HubTestSchema.column("store"): .text("S9")])
        }
        let changeset = try pusher.changes(since: 0)
        let pusherID = pusher.id
        let bad = BackgroundTask("never-reads") {
            // A tiny receive window, and not one read: everything the hub answers piles up.
            let client = try RawClient(port: port, receiveBuffer: 4096)
            try client.send(BadClient.hello(pusherID))
            try client.send(.push(changeset))
            try client.send(.pull(Pull(fromSequence: 0, maxCells: 0, live: true)))
            // It keeps talking (PINGs are always allowed), so PONGs queue up on the hub until the
            // per-session limit drops it. A reset or broken pipe on our side says it did.
            var pings: [UInt8] = []
            for nonce in 0..<1024 { try FrameEncoder().encode(.ping(nonce: UInt64(nonce)), appendingTo: &pings) }
            var sent = 0
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                do {
                    try client.write(pings, timeout: .seconds(30))
                    sent += pings.count
                } catch RawClient.Failure.call(_, let code) where code == EPIPE || code == ECONNRESET {
                    return
                }
            }
            XCTFail("the hub never dropped a client that does not read (\(sent) bytes of PINGs sent)")
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
        waitUntil(timeout: 30, "the drop is logged as a slow consumer") { BadClient.logCount(fixture, "closing slow consumer") == 1 }
        // Its PUSH was merged before it stalled: a stalled reader loses nothing it was acknowledged for.
        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE store = 'S9'") }, .integer(1))
        waitUntil(timeout: 30, "its session is gone") { fixture.server.sessionCount == 0 }
    }

    func testTheClientOverTheConnectionCapGetsServerBusy() throws {
        let fixture = try HubFixture { $0.maxConnections = 3 }
        let port = fixture.address.port
        let a = try fixture.makeTerminal("live-a"), b = try fixture.makeTerminal("live-b")
        let agentA = LiveSyncAgent(replica: a, options: fixture.options(), logger: fixture.logger)
        let agentB = LiveSyncAgent(replica: b, options: fixture.options(), logger: fixture.logger)
        agentA.start(); agentB.start()
        defer { agentA.stop(); agentB.stop() }
        let held = try RawClient(port: port)
        try held.send(BadClient.hello())
        guard case .helloAck? = try held.receive() else { return XCTFail("the third client got no HELLO_ACK") }
        waitUntil(timeout: 30, "three sessions are open") { fixture.server.sessionCount == 3 }

        let extra = try RawClient(port: port)
        try? extra.send(BadClient.hello())
        let answer = try BadClient.serverAnswer(extra)
        BadClient.expectErrorAndClose(answer, .serverBusy, "the fourth client")
        if case .error(let error)? = answer.messages.last {
            XCTAssertNotNil(error.retryAfterMilliseconds, "SERVER_BUSY says when to come back")
        }
        XCTAssertFalse(answer.messages.contains { $0.type == .helloAck })

        // A terminal turned away learns why and when to come back, however the ERROR and the
        // close race its own first sends (HELLO, PUSH, PULL).
        let turnedAway = try fixture.makeTerminal("turned-away")
        try turnedAway.write { try $0.insert(into: HubTestSchema.leads, primaryKey: "AWAY", [HubTestSchema.column("name"): .text("x")]) }
        for attempt in 0..<20 {
            do {
                _ = try fixture.sync(turnedAway)
                XCTFail("attempt \(attempt): a terminal over the cap synced")
            } catch let failure as SyncFailure {
                XCTAssertEqual(failure.code, .serverBusy, "attempt \(attempt): \(failure)")
                XCTAssertNotNil(failure.retryAfterMilliseconds, "attempt \(attempt): \(failure)")
            }
        }

        // The live terminals were not disturbed: a write on one reaches the other.
        for index in 0..<5 {
            try a.write { try $0.insert(into: HubTestSchema.leads, primaryKey: "CAP\(index)", [HubTestSchema.column("name"): .text("x")]) }
            agentA.localWriteCommitted()
        }
        try waitUntil(timeout: 30, "b receives a's writes") {
            try b.read { try $0.fetchScalar("SELECT count(*) FROM leads WHERE id LIKE 'CAP%'") } == .integer(5)
        }
        // A slot freed is a slot usable again: the refused client did not keep one.
        held.shutdownWrite()
        waitUntil(timeout: 30, "the held session closes") { fixture.server.sessionCount == 2 }
        let late = try RawClient(port: port)
        try late.send(BadClient.hello())
        guard case .helloAck? = try late.receive() else { return XCTFail("a client under the cap was refused") }
    }

    /// The state machine's refusals (PROTOCOL.md §5.3, §7.1), each on its own connection.
    func testMessagesTheStateMachineRefusesGetTheirCodes() throws {
        let fixture = try HubFixture()
        let port = fixture.address.port
        let pusher = try fixture.makeTerminal("pusher")
        try pusher.write { tx in
            try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(), [HubTestSchema.column("store"): .text("S8")])
        }
        let changeset = try pusher.changes(since: 0)
        var gap = changeset
        gap.fromSequence = 5
        gap.toSequence = 9
        var badChecksum = try FrameEncoder().encode(.ping(nonce: 1))
        badChecksum[badChecksum.count - 1] ^= 0xFF
        let unknownType = WireFormat.frame(type: 0x0D, payload: [])
        let pusherID = pusher.id
        let cases: [(name: String, afterHello: Bool, bytes: [UInt8], code: ErrorCode)] = [
            ("PULL before HELLO", false, try FrameEncoder().encode(.pull(Pull(fromSequence: 0, maxCells: 0, live: false))), .unexpectedMessage),
            ("bad checksum", false, badChecksum, .badChecksum),
            ("unknown type", false, unknownType, .unknownMessageType),
            ("second HELLO", true, try FrameEncoder().encode(BadClient.hello(pusherID)), .unexpectedMessage),
            ("server message from a client", true, try FrameEncoder().encode(.pushAck(acknowledgedSequence: 1)), .unexpectedMessage),
            ("push of another replica's changes", false, try FrameEncoder().encode(.push(changeset)), .outOfScope),
            ("push that skips a range", true, try FrameEncoder().encode(.push(gap)), .badCursor),
            ("unknown view", false, try FrameEncoder().encode(.viewRequest(ViewRequest(requestID: 1, view: "nope", parameters: []))), .unknownView),
        ]
        let bad = BackgroundTask("state-machine") {
            for entry in cases {
                let client = try RawClient(port: port)
                if entry.afterHello {
                    try client.send(BadClient.hello(pusherID))
                    guard case .helloAck? = try client.receive() else { return XCTFail("\(entry.name): no HELLO_ACK") }
                } else if entry.code == .outOfScope {
                    try client.send(BadClient.hello())  // another replica's session pushes pusher's changes
                    guard case .helloAck? = try client.receive() else { return XCTFail("\(entry.name): no HELLO_ACK") }
                } else if entry.code == .unknownView {
                    try client.send(BadClient.hello(role: .hub))  // views are for hub and HQ sessions
                    guard case .helloAck? = try client.receive() else { return XCTFail("\(entry.name): no HELLO_ACK") }
                }
                try? client.write(entry.bytes)
                BadClient.expectErrorAndClose(try BadClient.serverAnswer(client), entry.code, entry.name)
            }
        }
        try syncGoodTerminals(fixture, while: bad)
        try bad.join()
        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE store = 'S8'") }, .integer(0),
                       "a refused push applies nothing")
    }
}

/// Helpers for the bad clients (static: they run on the clients' own threads).
enum BadClient {
    /// What the server sent before closing, read to the end of the stream.
    static func serverAnswer(_ client: RawClient) throws -> (messages: [Message], closed: Bool) {
        let (bytes, endOfStream) = client.readUntilEndOfStream()
        client.shutdownWrite()  // the server waits for our end of stream before it lets go
        return (try RawClient.decodeAll(bytes), endOfStream)
    }

    static func expectErrorAndClose(_ answer: (messages: [Message], closed: Bool), _ code: ErrorCode, _ context: String,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(answer.closed, "\(context): the server did not close the connection", file: file, line: line)
        guard case .error(let error)? = answer.messages.last else {
            return XCTFail("\(context): expected an ERROR frame, got \(answer.messages.map(\.type))", file: file, line: line)
        }
        XCTAssertEqual(error.code, code, "\(context): \(error.message)", file: file, line: line)
    }

    static func hello(_ replica: ReplicaID = .random(), versions: [UInt16] = [1], role: Role = .terminal) -> Message {
        .hello(Hello(protocolVersions: versions, replica: replica, role: role, scope: role == .terminal ? "store:S1" : "region:R1",
                     clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: []))
    }

    static func logCount(_ fixture: HubFixture, _ message: String) -> Int {
        fixture.logs.records.filter { $0.message == message }.count
    }
}

/// The seed of a randomized test: a fresh one per run, or STORESYNC_SEED to replay one.
/// Printed, and named in every failure message, so a failure can be replayed.
func propertySeed() -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["STORESYNC_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
    print("seed \(seed) (replay with STORESYNC_SEED=\(seed))")
    return seed
}
