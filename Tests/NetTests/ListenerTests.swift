import Dispatch
import Foundation
import Glibc
import Logging
@testable import Net
import Synchronization
import XCTest

private let noFileLimit = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

final class ListenerTests: XCTestCase {
    func testBindsAnEphemeralPortAndReportsIt() throws {
        let listener = try Listener(address: loopback, limits: ConnectionLimits(), logger: testLogger)
        defer { closeAndWait(listener) }
        XCTAssertEqual(listener.boundAddress.host, "127.0.0.1")
        XCTAssertNotEqual(listener.boundAddress.port, 0)
        XCTAssertThrowsError(try Listener(address: listener.boundAddress, limits: ConnectionLimits(), logger: testLogger)) { error in
            XCTAssertEqual((error as? NetError)?.errno, EADDRINUSE, "\(error)")
        }
    }

    /// With the descriptor limit lowered so the accepted socket cannot be created, the
    /// listener logs, pauses and retries on a timer (not in a busy loop), and accepts the
    /// waiting connection once descriptors are available again.
    func testRunningOutOfDescriptorsPausesAcceptingInsteadOfSpinning() throws {
        let sink = MemorySink()
        let logger = Logger(label: "emfile", minimumLevel: .debug, sink: sink)
        let listener = try Listener(address: loopback, limits: ConnectionLimits(), logger: logger)
        let accepted = Mutex<[FramedConnection]>([])
        let acceptSignal = DispatchSemaphore(value: 0)
        listener.start { connection in
            accepted.withLock { $0.append(connection) }
            acceptSignal.signal()
        }
        defer {
            closeAndWait(listener)
            accepted.withLock { $0.forEach { $0.close(flushing: false) } }
        }
        func pauses() -> [LogRecord] { sink.records.filter { $0.message == "accept failed; pausing" } }

        // Lower the limit just above the open descriptors, fill every free number below it,
        // then free exactly one: the client's socket takes it, and the listener's accept has
        // none left.
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int32($0) }
        guard let highest = open.max() else { return XCTFail("no descriptors listed") }
        var original = rlimit()
        XCTAssertEqual(getrlimit(noFileLimit, &original), 0)
        var lowered = original
        lowered.rlim_cur = rlim_t(highest + 2)
        XCTAssertEqual(setrlimit(noFileLimit, &lowered), 0)
        var fillers: [Int32] = []
        while true {
            let fd = dup(2)
            if fd < 0 { break }
            fillers.append(fd)
        }
        let restore = {
            var limit = original
            _ = setrlimit(noFileLimit, &limit)
            for fd in fillers { Glibc.close(fd) }
            fillers.removeAll()
        }
        guard let spare = fillers.popLast() else {
            restore()
            return XCTFail("could not fill the descriptor table")
        }
        Glibc.close(spare)
        let client: RawSocket
        do {
            client = try RawSocket(port: listener.boundAddress.port)
        } catch {
            restore()
            throw error
        }

        // Wait for three failed attempts: each after a backoff, so at least two backoffs apart.
        let end = deadline(.seconds(10)).uptimeNanoseconds
        let tick = DispatchSemaphore(value: 0)
        while pauses().count < 3 && DispatchTime.now().uptimeNanoseconds < end {
            _ = tick.wait(timeout: deadline(.milliseconds(10)))
        }
        let attempts = pauses()
        let acceptedWhileFull = accepted.withLock { $0.count }
        restore()
        XCTAssertGreaterThanOrEqual(attempts.count, 3)
        XCTAssertEqual(acceptedWhileFull, 0)
        XCTAssertTrue(attempts.first?.metadata.contains { $0.1.contains("EMFILE") || $0.1.contains("errno 24") } ?? false, "\(attempts.first?.metadata ?? [])")

        // Descriptors are back: the waiting connection is accepted after the next backoff.
        XCTAssertEqual(acceptSignal.wait(timeout: deadline(.seconds(5))), .success)
        XCTAssertLessThan(pauses().count, 10, "accept retried in a tight loop")
        withExtendedLifetime(client) {}
    }
}
