import Dispatch
import Glibc
@testable import Net
import XCTest

final class DialerTests: XCTestCase {
    func testSocketAddressParsing() throws {
        XCTAssertEqual(try SocketAddress.parse("127.0.0.1:7000"), SocketAddress(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(try SocketAddress.parse("[::1]:0"), SocketAddress(host: "::1", port: 0))
        XCTAssertEqual(try SocketAddress.parse("hub.example:65535"), SocketAddress(host: "hub.example", port: 65535))
        XCTAssertEqual(try SocketAddress.parse(":80"), SocketAddress(host: "", port: 80))
        XCTAssertEqual(SocketAddress(host: "::1", port: 9).description, "[::1]:9")
        for bad in ["127.0.0.1", "::1:80", "[::1]80", "[::1:80", "host:65536", "host:-1", "host:"] {
            XCTAssertThrowsError(try SocketAddress.parse(bad), bad)
        }
    }

    func testIPv6LoopbackRoundTrip() throws {
        let listener: Listener
        do {
            listener = try Listener(address: SocketAddress(host: "::1", port: 0), limits: ConnectionLimits(), logger: testLogger)
        } catch {
            throw XCTSkip("no IPv6 loopback here: \(error)")
        }
        let serverClosed = DispatchSemaphore(value: 0)
        listener.start { connection in
            connection.start(onMessage: { connection.send($0) }, onClose: { _ in serverClosed.signal() })
        }
        defer { closeAndWait(listener) }
        let client = try BlockingFramedClient(connectingTo: listener.boundAddress, timeout: .seconds(5), logger: testLogger)
        try client.send(.ping(nonce: 6))
        XCTAssertEqual(try client.receive(timeout: .seconds(5)), .ping(nonce: 6))
        XCTAssertTrue(client.connection.remoteAddress.hasPrefix("[::1]:"))
        XCTAssertEqual(client.close(), .local)
        XCTAssertEqual(serverClosed.wait(timeout: deadline(.seconds(10))), .success)
    }

    func testConnectToAClosedPortIsRefused() throws {
        // Bind an ephemeral port, then free it: nothing listens there now.
        let listener = try Listener(address: loopback, limits: ConnectionLimits(), logger: testLogger)
        let address = listener.boundAddress
        listener.close()
        XCTAssertThrowsError(try Dialer.connect(to: address, timeout: .seconds(5), limits: ConnectionLimits(), logger: testLogger)) { error in
            XCTAssertEqual((error as? NetError)?.errno, ECONNREFUSED, "\(error)")
            XCTAssertEqual((error as? NetError)?.call, "connect")
        }
    }

    /// Loopback only: a listener with backlog 0 that never accepts. Once its accept queue is
    /// full, Linux drops further SYNs, so a connect gets no answer and must time out.
    func testConnectTimesOutWhenTheBacklogIsFull() throws {
        let listener = try Listener(address: loopback, backlog: 0, limits: ConnectionLimits(), logger: testLogger)
        defer { closeAndWait(listener) }
        var fillers: [FramedConnection] = []
        var full = false
        while !full && fillers.count < 16 {
            switch Result(catching: { () throws(NetError) -> FramedConnection in
                try Dialer.connect(to: listener.boundAddress, timeout: .milliseconds(300), limits: ConnectionLimits(), logger: testLogger)
            }) {
            case .success(let connection): fillers.append(connection)
            case .failure(let error):
                guard error.errno == ETIMEDOUT else { throw error }
                full = true
            }
        }
        guard full else { throw XCTSkip("the kernel never dropped a SYN (accept queue did not fill)") }
        let started = DispatchTime.now().uptimeNanoseconds
        XCTAssertThrowsError(try Dialer.connect(to: listener.boundAddress, timeout: .milliseconds(250), limits: ConnectionLimits(), logger: testLogger)) { error in
            XCTAssertEqual((error as? NetError)?.errno, ETIMEDOUT, "\(error)")
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        XCTAssertGreaterThanOrEqual(elapsed, 250_000_000)
        XCTAssertLessThan(elapsed, 2_000_000_000)
        for filler in fillers { filler.close(flushing: false) }
    }
}
