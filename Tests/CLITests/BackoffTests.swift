import Foundation
import Logging
import Net
import Retail
import Synchronization
import SyncEngine
import Terminal
import Wire
import XCTest

/// Issue 11 item 7: every client and relay backs off on every error. A regional hub whose disk
/// was full reconnected to HQ about 19 times a second: a handshake reset the backoff, so a
/// session failing right after HELLO always waited the first step's 0–100 ms. These tests let
/// an agent fail against stand-ins that always refuse, and check the sequence of waits the
/// backoff chose (jitter off: each wait is its exponential bound), not how long anything took.
final class BackoffTests: CLITestCase {
    /// 1 ms doubling to a 16 ms ceiling: the whole sequence takes well under a second.
    private func fastBackoff() -> LiveSyncAgent.Backoff {
        var backoff = LiveSyncAgent.Backoff()
        backoff.initial = .milliseconds(1)
        backoff.maximum = .milliseconds(16)
        backoff.jitter = { $0 }
        return backoff
    }

    /// Runs a live agent against `address` until it has backed off `count` times; returns the
    /// waits in milliseconds.
    private func waits(connectingTo address: SocketAddress, count: Int, backoff: LiveSyncAgent.Backoff) throws -> [Int64] {
        let replica = try Replica(path: path("t.sqlite"), schema: RetailSchema.all)
        var options = SyncOptions(hub: address, scope: "store:S1")
        options.widestTableColumns = RetailSchema.widestTableColumns
        options.connectTimeout = .seconds(5)
        let waits = Mutex<[Int64]>([])
        let agent = LiveSyncAgent(replica: replica, options: options, backoff: backoff, logger: Logger.discarding) { event in
            if case .backingOff(let wait) = event {
                waits.withLock { $0.append(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000) }
            }
        }
        agent.start()
        defer { agent.stop() }
        try waitUntil("the agent backed off \(count) times") { waits.withLock { $0.count } >= count }
        return Array(waits.withLock { $0 }.prefix(count))
    }

    /// INTERNAL right after a successful handshake (HQ's, or the relay's own, disk full): the
    /// handshake must not reset the backoff.
    func testASessionFailingAfterItsHandshakeBacksOffExponentially() throws {
        let hub = try Replica(path: path("hq.sqlite"), schema: RetailSchema.all)
        try ReferenceData.setStore(id: "S1", region: "north", latitude: 31.2, longitude: 121.5, name: nil, in: hub)
        let node = try startRetailHub(hub)
        defer { node.stop() }
        let proxy = try MeddlingProxy(mode: .failAfterHandshake(ErrorMessage(code: .internal, message: "database or disk is full")),
                                      hub: node.boundAddress)
        defer { proxy.close() }
        let waits = try waits(connectingTo: proxy.address, count: 8, backoff: fastBackoff())
        XCTAssertEqual(waits, [1, 2, 4, 8, 16, 16, 16, 16], "doubling from the first step to the ceiling, never reset by a handshake")
        XCTAssertGreaterThanOrEqual(proxy.connections, 8, "one session per wait")
    }

    /// SERVER_BUSY with retry_after_ms 5: never sooner than the hub asked, doubling beyond it.
    func testRetryAfterIsAFloorUnderTheExponentialWait() throws {
        let proxy = try MeddlingProxy(mode: .refuseHello(ErrorMessage(code: .serverBusy, message: "busy", retryAfterMilliseconds: 5)),
                                      hub: nil)
        defer { proxy.close() }
        let waits = try waits(connectingTo: proxy.address, count: 7, backoff: fastBackoff())
        XCTAssertEqual(waits, [5, 5, 5, 8, 16, 16, 16])
    }

    /// Nothing listening (connect refused): the same doubling.
    func testConnectFailuresBackOffExponentially() throws {
        let closed = try Listener(address: SocketAddress(host: "127.0.0.1", port: 0), limits: ConnectionLimits(), logger: Logger.discarding)
        let address = closed.boundAddress
        closed.close()
        let waits = try waits(connectingTo: address, count: 6, backoff: fastBackoff())
        XCTAssertEqual(waits, [1, 2, 4, 8, 16, 16])
    }

    /// The default policy: waits between half and all of the bound (jittered, yet growing),
    /// the bound doubling from 100 ms to the 30 s ceiling; a hub's retry_after above it wins.
    func testTheDefaultBackoffIsJitteredUpToItsCeiling() {
        let backoff = LiveSyncAgent.Backoff()
        let dropped = SyncFailure(kind: .disconnected, message: "closed")
        for attempt in 0..<40 {
            let bound = backoff.bound(attempt: attempt)
            XCTAssertEqual(bound, min(.milliseconds(100 * (1 << min(attempt, 20))), .seconds(30)), "attempt \(attempt)")
            for _ in 0..<50 {
                let wait = backoff.delay(attempt: attempt, after: dropped)
                XCTAssertGreaterThanOrEqual(wait, bound / 2, "attempt \(attempt)")
                XCTAssertLessThanOrEqual(wait, bound, "attempt \(attempt)")
            }
        }
        let busy = SyncFailure(kind: .refused, code: .serverBusy, message: "busy", retryAfterMilliseconds: 60_000)
        XCTAssertEqual(backoff.delay(attempt: 0, after: busy), .seconds(60))
    }
}
