import Dispatch
import Foundation
import Glibc
import Logging
import Net
import Synchronization
import Wire
import XCTest

/// Reading paused and resumed by the owner, answers after a half-close, and ERROR frames that
/// reach a peer which sent more than was read (PROTOCOL.md §1).
final class BackPressureTests: XCTestCase {
    /// Garbage then more garbage then a half-close, twenty times: the ERROR must arrive every
    /// time (it used to be lost 16 times in 20, to an RST sent by closing with unread bytes or
    /// by cancelling before the queued ERROR was written).
    func testTheErrorReachesAClientThatHalfClosesEveryTime() throws {
        let server = try TestServer()
        defer { server.close() }
        for attempt in 0..<20 {
            let raw = try RawSocket(port: server.port)
            try raw.write(Array("GET / HTTP/1.1\r\n".utf8) + [UInt8](repeating: 0x41, count: 64 * 1024))
            raw.shutdownWrite()
            let (bytes, endOfStream) = raw.readUntilEndOfStream()
            XCTAssertTrue(endOfStream, "attempt \(attempt)")
            guard case .error(let error)? = try decodeAll(bytes).first else {
                return XCTFail("attempt \(attempt): expected an ERROR frame, got \(bytes.count) bytes")
            }
            XCTAssertEqual(error.code, .badMagic, "attempt \(attempt)")
        }
        XCTAssertEqual(server.waitForCloses(20).count, 20)
    }

    /// With `onInputEnd`, a client's half-close leaves the connection writable: an answer the
    /// owner sends afterwards (an ERROR computed elsewhere) still arrives, then the close.
    func testAnAnswerSentAfterTheClientHalfClosedArrives() throws {
        let listener = try Listener(address: loopback, limits: ConnectionLimits(), logger: testLogger)
        defer { closeAndWait(listener) }
        let inputEnded = DispatchSemaphore(value: 0)
        let closes = Mutex<[CloseReason]>([])
        listener.start { connection in
            connection.start(onMessage: { _ in }, onInputEnd: {
                inputEnded.signal()
                // As a hub answering from another queue, after the client's FIN.
                DispatchQueue.global().async {
                    connection.send(.error(ErrorMessage(code: .outOfScope, message: "late answer")))
                    connection.close(flushing: true)
                }
            }, onClose: { reason in closes.withLock { $0.append(reason) } })
        }
        let raw = try RawSocket(port: listener.boundAddress.port)
        try raw.write(try FrameEncoder().encode(.ping(nonce: 1)))
        raw.shutdownWrite()
        XCTAssertEqual(inputEnded.wait(timeout: deadline(.seconds(10))), .success)
        let (bytes, endOfStream) = raw.readUntilEndOfStream()
        XCTAssertTrue(endOfStream)
        XCTAssertEqual(try decodeAll(bytes), [.error(ErrorMessage(code: .outOfScope, message: "late answer"))])
    }

    /// While paused, nothing is delivered and what the connection buffers stays bounded by one
    /// read chunk plus a frame; resumed, everything arrives, in order.
    func testPausedReadingDeliversNothingAndResumesInOrder() throws {
        let listener = try Listener(address: loopback, limits: ConnectionLimits(), logger: testLogger)
        defer { closeAndWait(listener) }
        let received = Mutex<[UInt64]>([])
        let server = Mutex<FramedConnection?>(nil)
        let accepted = DispatchSemaphore(value: 0)
        listener.start { connection in
            server.withLock { $0 = connection }
            connection.start(onMessage: { message in
                guard case .ping(let nonce) = message else { return }
                received.withLock { $0.append(nonce) }
                // Pause after the first message, from inside the handler.
                if nonce == 0 { connection.pauseReading() }
            }, onClose: { _ in })
            accepted.signal()
        }
        let raw = try RawSocket(port: listener.boundAddress.port)
        XCTAssertEqual(accepted.wait(timeout: deadline(.seconds(10))), .success)
        let connection = try XCTUnwrap(server.withLock { $0 })
        var stream: [UInt8] = []
        let count = 20_000
        for nonce in 0..<UInt64(count) { stream += try FrameEncoder().encode(.ping(nonce: nonce)) }
        // Write from another thread: the paused server stops reading, so the kernel buffers fill
        // and this write blocks until reading resumes.
        let writer = DispatchSemaphore(value: 0)
        let fd = raw.fd
        let bytes = stream
        DispatchQueue.global().async {
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                if written < 0 { if errno == EINTR { continue } else { break } }
                offset += written
            }
            writer.signal()
        }
        waitUntil("reading paused after the first message") { connection.isReadingPaused && received.withLock { $0.count } == 1 }
        // Whatever the writer got into the kernel's buffers, the connection holds at most one
        // read chunk and a partial frame, and delivers nothing more.
        XCTAssertEqual(received.withLock { $0.count }, 1)
        XCTAssertLessThanOrEqual(connection.bufferedInboundBytes, 32 * 1024 + WireFormat.headerSize + 16)
        connection.resumeReading()
        XCTAssertEqual(writer.wait(timeout: deadline(.seconds(20))), .success)
        waitUntil("every ping delivered") { received.withLock { $0.count } == count }
        XCTAssertEqual(received.withLock { $0 }, Array(0..<UInt64(count)))
    }

    /// `whenOutboundDrains` runs once the peer has read the queue down, and with false when the
    /// connection closes first.
    func testDrainWaiterRunsWhenThePeerReads() throws {
        let server = try TestServer(behaviour: .ignore)
        defer { server.close() }
        let raw = try RawSocket(port: server.port)
        let connection = try XCTUnwrap(server.waitForAccept())
        let big = Message.viewRows(ViewRows(requestID: 1, final: false, columns: ["x"], rows: [[.blob([UInt8](repeating: 1, count: 1 << 20))]]))
        for _ in 0..<4 { XCTAssertTrue(connection.send(big)) }
        let drained = Mutex<Bool?>(nil)
        connection.whenOutboundDrains(below: 0) { ok in drained.withLock { $0 = ok } }
        XCTAssertNil(drained.withLock { $0 })
        XCTAssertEqual(try raw.readMessages(4, timeout: .seconds(20)).count, 4)
        waitUntil("drain waiter ran") { drained.withLock { $0 } != nil }
        XCTAssertEqual(drained.withLock { $0 }, true)
        let afterClose = Mutex<Bool?>(nil)
        connection.close(flushing: false)
        connection.whenOutboundDrains(below: 0) { ok in afterClose.withLock { $0 = ok } }
        waitUntil("drain waiter told of the close") { afterClose.withLock { $0 } != nil }
        XCTAssertEqual(afterClose.withLock { $0 }, false)
    }
}

/// Waits until `condition` holds, failing after `timeout`.
func waitUntil(timeout: TimeInterval = 10, _ message: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return }
        usleep(2_000)  // polling a condition with a deadline, not timing
    }
    XCTFail("timed out waiting: \(message)", file: file, line: line)
}
