import Dispatch
import Foundation
import Glibc
@testable import Net
import Synchronization
import Wire
import XCTest

final class ConcurrencyTests: XCTestCase {
    /// Runs `count` clients against one echo server, each sending `messages` pings and
    /// waiting for all of them back; then closes everything and waits for every close.
    private func exchange(clients count: Int, messages: Int) throws {
        let server = try TestServer()
        let address = SocketAddress(host: "127.0.0.1", port: server.port)
        var dialed: [FramedConnection] = []
        for _ in 0..<count {
            dialed.append(try Dialer.connect(to: address, timeout: .seconds(10), limits: ConnectionLimits(), logger: testLogger))
        }
        let connections = dialed
        let finished = DispatchGroup()
        let closed = DispatchGroup()
        let mismatches = Atomic<Int>(0)
        for connection in connections {
            finished.enter()
            closed.enter()
            let next = Mutex<UInt64>(0)
            connection.start(
                onMessage: { message in
                    let done: Bool = next.withLock { expected in
                        if message != .ping(nonce: expected) { mismatches.add(1, ordering: .relaxed) }
                        expected += 1
                        return expected == UInt64(messages)
                    }
                    if done { finished.leave() }
                },
                onClose: { _ in closed.leave() }
            )
        }
        DispatchQueue.concurrentPerform(iterations: count) { index in
            for nonce in 0..<UInt64(messages) {
                XCTAssertTrue(connections[index].send(.ping(nonce: nonce)))
            }
        }
        XCTAssertEqual(finished.wait(timeout: deadline(.seconds(60))), .success, "not every client got its echoes")
        XCTAssertEqual(mismatches.load(ordering: .relaxed), 0)
        for connection in connections { connection.close() }
        XCTAssertEqual(closed.wait(timeout: deadline(.seconds(30))), .success, "not every client closed")
        let reasons = server.waitForCloses(count, timeout: .seconds(30))
        XCTAssertEqual(reasons.count, count)
        XCTAssertTrue(reasons.allSatisfy { $0 == .peerClosed }, "\(Set(reasons))")
        server.close()
    }

    func testTwoHundredConcurrentConnectionsAndNoDescriptorLeak() throws {
        // Warm up, so Dispatch's own descriptors (epoll, eventfd) exist before counting.
        try exchange(clients: 1, messages: 1)
        let before = try openDescriptorCount()
        try exchange(clients: 200, messages: 50)
        XCTAssertEqual(try openDescriptorCount(), before)
    }

    /// Resident memory per idle server connection. Opt-in, as it opens many descriptors:
    /// `STORESYNC_NET_FOOTPRINT=2000 swift test --filter NetTests.ConcurrencyTests/testIdleConnectionFootprint`
    func testIdleConnectionFootprint() throws {
        guard let count = ProcessInfo.processInfo.environment["STORESYNC_NET_FOOTPRINT"].flatMap(Int.init) else {
            throw XCTSkip("set STORESYNC_NET_FOOTPRINT=N to measure")
        }
        var limits = ConnectionLimits()
        limits.idleTimeout = .seconds(600)
        try exchange(clients: 1, messages: 1)
        let server = try TestServer(limits: limits)
        defer { server.close() }
        let ping = try FrameEncoder().encode(.ping(nonce: 1))
        guard let before = residentKilobytes() else { throw XCTSkip("no /proc/self/status") }
        var clients: [RawSocket] = []
        for _ in 0..<count {
            let raw = try RawSocket(port: server.port)
            try raw.write(ping)
            clients.append(raw)
        }
        // Wait until every connection has been accepted, read, decoded, answered and gone idle.
        let end = deadline(.seconds(60)).uptimeNanoseconds
        let tick = DispatchSemaphore(value: 0)
        while server.receivedCount < count && DispatchTime.now().uptimeNanoseconds < end {
            _ = tick.wait(timeout: deadline(.milliseconds(10)))
        }
        XCTAssertEqual(server.receivedCount, count)
        guard let after = residentKilobytes() else { return }
        let perConnection = Double(after - before) * 1024 / Double(count)
        print("idle footprint: \(count) connections, RSS \(before) KiB -> \(after) KiB, \(Int(perConnection)) bytes per connection")
        XCTAssertLessThan(perConnection, 32 * 1024)
        withExtendedLifetime(clients) {}
    }
}
