import Foundation
import Glibc
import Hub
import Logging
import Net
import SQLite
import Synchronization
import SyncEngine
import Terminal
import Wire
import XCTest

/// Bounded hub resources (DESIGN.md invariant 7, PROTOCOL.md §5.3, §5.6) and answers that reach
/// clients which half-close (§1).
final class HubBackPressureTests: XCTestCase {
    private func visitRow(_ key: String, version: Version) -> RowChange {
        RowChange(primaryKey: key, causalLength: 1, lifeVersion: version, cells: [
            Cell(column: 0, value: .text("S1"), version: version),
            Cell(column: 1, value: .text("guide"), version: version),
            Cell(column: 2, value: .integer(5), version: version),
        ])
    }

    /// One raw client pipelines 10,000 PUSHes without waiting for acknowledgements while an
    /// honest terminal syncs. The hub holds at most its window of them per session (and its
    /// byte budget plus one push), measured by its own counters, pauses reading instead, answers
    /// every one in order, and the terminal's syncs go through meanwhile.
    func testTenThousandPipelinedPushesStayWithinTheWindowWhileATerminalSyncs() throws {
        let window = 64
        let budget = 64 * 1024
        // Commits without an fsync each (WAL, synchronous=normal): the test is about memory,
        // and 10,000 fsyncs on a shared CI disk would take minutes.
        var hubOptions = ReplicaOptions()
        hubOptions.synchronous = .normal
        let fixture = try HubFixture(hubOptions: hubOptions) {
            $0.maxPushesInFlight = window
            $0.maxPushBytesInFlight = budget
        }
        let source = ReplicaID.random()
        let count = ProcessInfo.processInfo.environment["STORESYNC_PIPELINED_PUSHES"].flatMap { Int($0) } ?? 10_000
        // The first push through the encoder, the rest by patching its payload (the cursors and
        // the key): encoding 10,000 changesets in a debug build takes longer than the test.
        let version = Version(hlc: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), origin: source)
        let columns = [HubTestSchema.column("store"), HubTestSchema.column("guide"), HubTestSchema.column("duration_min")]
        func push(_ index: Int) -> Changeset {
            Changeset(source: source, fromSequence: UInt64(index), toSequence: UInt64(index + 1), tables: [
                TableChanges(table: HubTestSchema.visits, columns: columns, rows: [visitRow(String(format: "p%06d", index), version: version)]),
            ])
        }
        let template = try FrameEncoder().encode(.push(push(0)))
        let largestPush = push(0).estimatedBytesBound(template.count)
        // Payload: source(16) from(varint) to(varint) ... "p000000" ...; from/to as 3-byte varints.
        let payload = Array(template.dropFirst(WireFormat.headerSize))
        let keyOffset = try XCTUnwrap(payload.firstRange(of: Array("p000000".utf8))?.lowerBound)
        var frames: [UInt8] = []
        frames.reserveCapacity(count * (template.count + 4))
        for index in 0..<count {
            // Varints must be minimal: write from/to in their shortest forms.
            var body = Array(payload[0..<16])
            appendVarint(UInt64(index), to: &body)
            appendVarint(UInt64(index + 1), to: &body)
            body += payload[18..<keyOffset]
            body += Array(String(format: "p%06d", index).utf8)
            body += payload[(keyOffset + 7)...]
            frames += WireFormat.frame(type: MessageType.push.rawValue, payload: body)
        }
        XCTAssertEqual(try FrameDecoder.decodeFrame(Array(frames.prefix(template.count))), .push(push(0)))
        let client = try RawClient(port: fixture.address.port)
        try client.send(BadClient.hello(source, versions: [1]))
        guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
        let fd = client.fd
        let all = frames
        // The writer blocks on TCP flow control whenever the hub stops reading.
        let writer = BackgroundTask("pipeliner") {
            var offset = 0
            while offset < all.count {
                let written = all.withUnsafeBytes { Glibc.send(fd, $0.baseAddress.map { $0 + offset }, all.count - offset, Int32(MSG_NOSIGNAL)) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw RawClient.Failure.call("send", errno)
                }
                offset += written
            }
        }
        let terminal = try fixture.makeTerminal("honest")
        let sync = SyncClient(replica: terminal, options: fixture.options(), logger: fixture.logger)
        let honest = BackgroundTask("honest terminal") {
            for round in 0..<5 {
                try terminal.write { tx in
                    try tx.insert(into: HubTestSchema.visits, primaryKey: "honest-\(round)",
                                  [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(1)])
                }
                _ = try sync.syncOnce()
            }
        }
        for index in 0..<count {
            guard let message = try client.receive(timeout: .seconds(60)) else { return XCTFail("no PUSH_ACK for push \(index)") }
            XCTAssertEqual(message, .pushAck(acknowledgedSequence: UInt64(index + 1)))
            if message != .pushAck(acknowledgedSequence: UInt64(index + 1)) { return }
        }
        try writer.join(timeout: .seconds(120))
        try honest.join(timeout: .seconds(120))
        let usage = fixture.server.resourceUsage
        print("pipelined \(count) pushes: peak per session \(usage.peakSessionPushesInFlight) pushes, \(usage.peakSessionPushBytesInFlight) bytes; "
              + "peak hub-wide \(usage.peakPushesInFlight) pushes, \(usage.peakPushBytesInFlight) bytes; \(usage.readPauses) read pauses")
        XCTAssertLessThanOrEqual(usage.peakSessionPushesInFlight, window, "the window bounds what one session holds")
        XCTAssertLessThanOrEqual(usage.peakSessionPushBytesInFlight, budget + largestPush, "the byte budget (plus one push) bounds it")
        // Two sessions at most pushed at once (the pipeliner and the honest terminal).
        XCTAssertLessThanOrEqual(usage.peakPushesInFlight, 2 * window)
        XCTAssertGreaterThan(usage.readPauses, 0, "the hub stopped reading the pipelining client")
        XCTAssertEqual(usage.pushesInFlight, 0)
        XCTAssertEqual(usage.pushBytesInFlight, 0)
        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE id LIKE 'p%'") }, .integer(Int64(count)))
        XCTAssertEqual(try fixture.hubReplica.read { try $0.fetchScalar("SELECT count(*) FROM visits WHERE id LIKE 'honest-%'") }, .integer(5))
    }

    /// A client that sends a PUSH the merge will refuse and half-closes at once still gets the
    /// ERROR, which the hub computes after the client's end of stream arrived (twenty times).
    func testAnErrorDecidedAfterTheClientHalfClosedStillArrives() throws {
        let fixture = try HubFixture()
        for attempt in 0..<20 {
            let id = ReplicaID.random()
            let client = try RawClient(port: fixture.address.port)
            var bytes = try FrameEncoder().encode(BadClient.hello(id, versions: [2]))
            // Starts above the hub's cursor (0) for this source: BAD_CURSOR, decided by the writer.
            try FrameEncoder().encode(.push(Changeset(source: id, fromSequence: 5, toSequence: 6, tables: [])), appendingTo: &bytes)
            try client.write(bytes)
            client.shutdownWrite()
            let (received, closed) = client.readUntilEndOfStream()
            XCTAssertTrue(closed, "attempt \(attempt)")
            let messages = try RawClient.decodeAll(received)
            XCTAssertEqual(messages.map(\.type), [.helloAck, .error], "attempt \(attempt)")
            if case .error(let error)? = messages.last { XCTAssertEqual(error.code, .badCursor, "attempt \(attempt)") }
        }
    }

    /// Over the connection cap, a client that sends HELLO and half-closes at once still reads
    /// SERVER_BUSY with its retry_after, every time.
    func testTheConnectionCapAnswersServerBusyToAHalfClosingClient() throws {
        let fixture = try HubFixture { $0.maxConnections = 1 }
        let held = try RawClient(port: fixture.address.port)
        try held.send(BadClient.hello())
        guard case .helloAck? = try held.receive() else { return XCTFail("the first client is served") }
        for attempt in 0..<20 {
            let extra = try RawClient(port: fixture.address.port)
            try? extra.send(BadClient.hello())
            extra.shutdownWrite()
            let (received, closed) = extra.readUntilEndOfStream()
            XCTAssertTrue(closed, "attempt \(attempt)")
            guard case .error(let error)? = try RawClient.decodeAll(received).last else {
                return XCTFail("attempt \(attempt): no ERROR in \(received.count) bytes")
            }
            XCTAssertEqual(error.code, .serverBusy, "attempt \(attempt)")
            XCTAssertNotNil(error.retryAfterMilliseconds, "attempt \(attempt)")
        }
    }

    /// A view far larger than the connection's outbound cap streams: chunk after chunk as the
    /// client reads, never queued whole (the hub used to queue every chunk at once, and a
    /// client reading at loopback speed was dropped as a slow consumer).
    func testALargeViewStreamsAtTheClientsPace() throws {
        let provider = FixedViewProvider(rows: 20_000, valueBytes: 500)
        let fixture = try HubFixture(views: provider) {
            $0.maxOutboundBytes = 1024 * 1024
            $0.viewRowsPerChunk = 1_000
        }
        let client = try RawClient(port: fixture.address.port)
        try client.send(BadClient.hello(versions: [2], role: .hub))
        guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
        try client.send(.viewRequest(ViewRequest(requestID: 7, view: "big", parameters: [])))
        var rows = 0
        var chunks = 0
        while true {
            guard let message = try client.receive(timeout: .seconds(60)) else { return XCTFail("the view stopped after \(rows) rows") }
            guard case .viewRows(let part) = message else { return XCTFail("expected VIEW_ROWS, got \(message.type)") }
            XCTAssertEqual(part.requestID, 7)
            rows += part.rows.count
            chunks += 1
            if part.final { break }
        }
        XCTAssertEqual(rows, 20_000)
        XCTAssertEqual(chunks, 20)
        XCTAssertEqual(fixture.server.resourceUsage.viewsInFlight, 0)
        try client.send(.ping(nonce: 1))
        XCTAssertEqual(try client.receive(), .pong(nonce: 1), "the session goes on after the view")
    }

    /// A known view with a bad parameter gets BAD_VIEW_PARAMETER; an unknown one UNKNOWN_VIEW.
    func testABadViewParameterHasItsOwnCode() throws {
        let fixture = try HubFixture(views: FixedViewProvider(rows: 1, valueBytes: 1))
        for (view, code) in [("big?bad", ErrorCode.badViewParameter), ("nope", .unknownView)] {
            let client = try RawClient(port: fixture.address.port)
            try client.send(BadClient.hello(versions: [2], role: .hub))
            guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
            try client.send(.viewRequest(ViewRequest(requestID: 1, view: view, parameters: [])))
            BadClient.expectErrorAndClose(try BadClient.serverAnswer(client), code, view)
        }
    }
}

extension Changeset {
    /// A generous bound of what the hub counts for one push in memory: 8 times its frame.
    func estimatedBytesBound(_ frameBytes: Int) -> Int { 8 * frameBytes + 1_024 }
}

func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    bytes.append(UInt8(rest))
}

/// A view `big` of `rows` rows of one text value; `big?bad` is the same view asked with a bad
/// parameter; any other name is unknown.
struct FixedViewProvider: ViewProvider {
    var rows: Int
    var valueBytes: Int

    func answer(view: String, parameters: [(name: String, value: String)]) throws -> (columns: [String], rows: [[Value]]) {
        switch view {
        case "big":
            let value = Value.text(String(repeating: "x", count: valueBytes))
            return (["value"], Array(repeating: [value], count: rows))
        case "big?bad":
            throw ViewRefusal.badParameter("view big takes no parameter")
        default:
            throw ViewRefusal("no view \(view)")
        }
    }
}

/// No database work on a connection's queue (DESIGN.md, Hub internals): with the writer held
/// (a long group commit, its fsync, the central rules), a handshake is still answered, PINGs
/// too, and a second outstanding PULL is refused as the spec says.
final class ConnectionQueueTests: XCTestCase {
    func testTheHandshakeAndPingsDoNotWaitForTheWriter() throws {
        let fixture = try HubFixture()
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let replica = fixture.hubReplica
        let writer = BackgroundTask("writer held") {
            try replica.write { _ in
                held.signal()
                _ = release.wait(timeout: .now() + 60)
            }
        }
        XCTAssertEqual(held.wait(timeout: .now() + 30), .success)
        defer {
            release.signal()
            try? writer.join()
        }
        // Version 1: its handshake needs no write at all (a version 2 one waits for its lease
        // to be durable, on the merge queue, never on the connection's queue).
        let client = try RawClient(port: fixture.address.port)
        try client.send(BadClient.hello(versions: [1]))
        guard case .helloAck? = try client.receive(timeout: .seconds(20)) else {
            return XCTFail("the handshake waited for the writer")
        }
        try client.send(.ping(nonce: 9))
        XCTAssertEqual(try client.receive(timeout: .seconds(20)), .pong(nonce: 9))
        // Pulls read through a reader, which the writer does not block either.
        try client.send(.pull(Pull(fromSequence: 0, maxCells: 0, live: false)))
        guard case .pullBatch? = try client.receive(timeout: .seconds(20)) else { return XCTFail("the pull waited for the writer") }
        // PULLs back to back in one write: the hub delivers them in one tight loop while the first
        // one's read runs on the reader, so one of them finds a PULL outstanding:
        // UNEXPECTED_MESSAGE (PROTOCOL.md §5.4).
        var pulls: [UInt8] = []
        for _ in 0..<20 { try FrameEncoder().encode(.pull(Pull(fromSequence: 0, maxCells: 0, live: false)), appendingTo: &pulls) }
        try client.write(pulls)
        let answer = try BadClient.serverAnswer(client)
        BadClient.expectErrorAndClose(answer, .unexpectedMessage, "a second outstanding PULL")
    }
}
