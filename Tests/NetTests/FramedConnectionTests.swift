import Dispatch
import Glibc
import Logging
@testable import Net
import Synchronization
import Wire
import XCTest

final class FramedConnectionTests: XCTestCase {
    func testEchoRoundTripOfSeveralMessageTypes() throws {
        let server = try TestServer()
        defer { server.close() }
        let client = try BlockingFramedClient(connectingTo: SocketAddress(host: "127.0.0.1", port: server.port), timeout: .seconds(5), logger: testLogger)
        let messages = try sampleMessages()
        for message in messages { try client.send(message) }
        for message in messages {
            XCTAssertEqual(try client.receive(timeout: .seconds(10)), message)
        }
        XCTAssertEqual(client.close(), .local)
        XCTAssertEqual(server.waitForCloses(1), [.peerClosed])
    }

    func testManyFramesInOneWriteAndOneFrameByteByByte() throws {
        let server = try TestServer()
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        let messages = try sampleMessages()
        var batch: [UInt8] = []
        for index in 0..<100 {
            try FrameEncoder().encode(messages[index % messages.count], appendingTo: &batch)
        }
        try raw.write(batch)
        let echoed = try raw.readMessages(100)
        XCTAssertEqual(echoed.count, 100)
        for (index, message) in echoed.enumerated() {
            XCTAssertEqual(message, messages[index % messages.count])
        }

        // One frame, one byte per write: the decoder must reassemble it across reads.
        let frame = try FrameEncoder().encode(.pull(Pull(fromSequence: 5, maxCells: 10, live: false)))
        for byte in frame { try raw.write([byte]) }
        XCTAssertEqual(try raw.readMessages(1), [.pull(Pull(fromSequence: 5, maxCells: 10, live: false))])
        XCTAssertEqual(server.receivedCount, 101)
    }

    func testGarbageGetsAnErrorFrameAndAProtocolErrorClose() throws {
        let server = try TestServer()
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        try raw.write(Array("GET / HTTP/1.1\r\nHost: hub\r\n\r\n".utf8))
        let (bytes, endOfStream) = raw.readUntilEndOfStream()
        XCTAssertTrue(endOfStream)
        raw.shutdownWrite()  // the server waits for our end of stream (up to closeTimeout)
        guard case .error(let error)? = try decodeAll(bytes).first else {
            return XCTFail("expected an ERROR frame, got \(bytes.count) bytes")
        }
        XCTAssertEqual(error.code, .badMagic)
        XCTAssertEqual(server.waitForCloses(1), [.protocolError(.badMagic)])
    }

    func testOversizedLengthIsRefusedOnTheHeader() throws {
        var limits = ConnectionLimits()
        limits.maxFrameBytes = 1024
        let server = try TestServer(limits: limits)
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        // A well-formed header declaring a 2 GiB payload, and no payload: the server must
        // refuse on the header alone rather than wait for (or allocate) the body.
        var header = WireFormat.frame(type: MessageType.push.rawValue, payload: [])
        header[5] = 0x80
        try raw.write(header)
        let (bytes, endOfStream) = raw.readUntilEndOfStream()
        XCTAssertTrue(endOfStream)
        raw.shutdownWrite()  // the server waits for our end of stream (up to closeTimeout)
        XCTAssertEqual(try decodeAll(bytes).map(\.type), [.error])
        let reasons = server.waitForCloses(1)
        guard case .protocolError(.tooLarge(_, let size, let maximum))? = reasons.first else {
            return XCTFail("expected TOO_LARGE, got \(reasons)")
        }
        XCTAssertEqual(size, 0x8000_0000)
        XCTAssertEqual(maximum, 1024)
    }

    func testEndOfStreamInsideAFrameIsAProtocolError() throws {
        let server = try TestServer()
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        let frame = try FrameEncoder().encode(.ping(nonce: 1))
        try raw.write(Array(frame.prefix(frame.count - 1)))
        raw.shutdownWrite()
        let (bytes, endOfStream) = raw.readUntilEndOfStream()
        XCTAssertTrue(endOfStream)
        raw.shutdownWrite()  // the server waits for our end of stream (up to closeTimeout)
        guard case .error(let error)? = try decodeAll(bytes).first else { return XCTFail("expected an ERROR frame") }
        XCTAssertEqual(error.code, .truncated)
        XCTAssertEqual(server.waitForCloses(1), [.protocolError(.truncated(bufferedBytes: frame.count - 1))])
    }

    func testEndOfStreamBetweenFramesIsPeerClosed() throws {
        let server = try TestServer()
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        try raw.write(try FrameEncoder().encode(.ping(nonce: 3)))
        XCTAssertEqual(try raw.readMessages(1), [.ping(nonce: 3)])
        raw.shutdownWrite()
        XCTAssertEqual(server.waitForCloses(1), [.peerClosed])
        XCTAssertTrue(raw.readUntilEndOfStream().endOfStream)
    }

    func testIdleTimeoutCloses() throws {
        var limits = ConnectionLimits()
        limits.idleTimeout = .milliseconds(200)
        let server = try TestServer(limits: limits)
        defer { server.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        let raw = try RawSocket(port: server.port)
        XCTAssertTrue(raw.readUntilEndOfStream().endOfStream)
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        XCTAssertGreaterThanOrEqual(elapsed, 200_000_000)
        raw.shutdownWrite()
        XCTAssertEqual(server.waitForCloses(1), [.idleTimeout])
    }

    func testLocalCloseFlushesWhatIsQueued() throws {
        let server = try TestServer(behaviour: .ignore)
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        guard let connection = server.waitForAccept() else { return XCTFail("no connection accepted") }
        let big = Message.error(ErrorMessage(code: .internal, message: String(repeating: "x", count: 60_000)))
        for _ in 0..<200 { XCTAssertTrue(connection.send(big)) }
        connection.close()
        XCTAssertFalse(connection.send(.ping(nonce: 1)), "send after close must fail")
        // 12 MB queued behind a peer that has not read yet: all of it still arrives.
        XCTAssertEqual(try raw.readMessages(200).count, 200)
        raw.shutdownWrite()
        XCTAssertEqual(server.waitForCloses(1), [.local])
    }

    func testSlowConsumerIsClosedWhileAnotherConnectionStaysPrompt() throws {
        var limits = ConnectionLimits()
        limits.maxOutboundBytes = 1 << 20
        let server = try TestServer(limits: limits)
        defer { server.close() }
        let stalled = try RawSocket(port: server.port)
        guard let slow = server.waitForAccept() else { return XCTFail("no connection accepted") }
        let client = try BlockingFramedClient(connectingTo: SocketAddress(host: "127.0.0.1", port: server.port), timeout: .seconds(5), logger: testLogger)
        let chunk = Message.error(ErrorMessage(code: .internal, message: String(repeating: "y", count: 16_000)))

        // Fill the kernel buffers, then half of the allowed queue.
        var sent = 0
        while slow.queuedOutboundBytes < limits.maxOutboundBytes / 2 {
            XCTAssertTrue(slow.send(chunk))
            sent += 1
            XCTAssertLessThan(sent, 100_000)
        }
        // The other connection is not held up by the stalled one.
        for nonce in 0..<50 as Range<UInt64> {
            try client.send(.ping(nonce: nonce))
            XCTAssertEqual(try client.receive(timeout: .seconds(30)), .ping(nonce: nonce))
        }
        // Going over the cap fails the send and closes the connection.
        var refused = false
        for _ in 0..<1000 where !refused {
            refused = !slow.send(chunk)
        }
        XCTAssertTrue(refused)
        XCTAssertFalse(slow.send(.ping(nonce: 0)))
        XCTAssertEqual(server.waitForCloses(1), [.slowConsumer])
        try client.send(.ping(nonce: 99))
        XCTAssertEqual(try client.receive(timeout: .seconds(30)), .ping(nonce: 99))
        XCTAssertEqual(client.close(), .local)
        XCTAssertEqual(server.waitForCloses(2), [.slowConsumer, .peerClosed])
        withExtendedLifetime(stalled) {}
    }

    func testCloseBeforeStartAndStartAfterClose() throws {
        let server = try TestServer(behaviour: .ignore)
        defer { server.close() }
        let connection = try Dialer.connect(to: SocketAddress(host: "127.0.0.1", port: server.port), timeout: .seconds(5), limits: ConnectionLimits(), logger: testLogger)
        connection.close()
        XCTAssertFalse(connection.isOpen)
        XCTAssertFalse(connection.send(.ping(nonce: 1)))
        let closed = DispatchSemaphore(value: 0)
        let reason = Mutex<CloseReason?>(nil)
        connection.start(onMessage: { _ in }, onClose: { value in
            reason.withLock { $0 = value }
            closed.signal()
        })
        XCTAssertEqual(closed.wait(timeout: deadline(.seconds(5))), .success)
        XCTAssertEqual(reason.withLock { $0 }, .local)
        XCTAssertEqual(server.waitForCloses(1), [.peerClosed])
    }
}
