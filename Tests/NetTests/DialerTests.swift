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
        // A socket bound to an ephemeral port but not listening: connects are refused, and the
        // port stays ours for the whole test. (Binding, closing and dialing the freed port lets
        // another test's listener take it in between: a rebound port made this test flaky.)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic -> Int32 in
                guard bind(fd, generic, length) == 0 else { return -1 }
                return getsockname(fd, generic, &length)
            }
        }
        XCTAssertEqual(bound, 0, "bind: errno \(errno)")
        let target = SocketAddress(host: "127.0.0.1", port: UInt16(bigEndian: address.sin_port))
        XCTAssertThrowsError(try Dialer.connect(to: target, timeout: .seconds(5), limits: ConnectionLimits(), logger: testLogger)) { error in
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
        for filler in fillers { filler.close(flushing: false) }
    }
}
