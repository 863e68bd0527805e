import Dispatch
import Foundation
import Logging
import Net
import Retail
import SyncEngine
import Synchronization
import Terminal

/// Terminals that push (or sync) their replicas to a hub all at once: one thread per terminal,
/// created up front and held at a gate, so the measured time starts at `release()` with every
/// thread ready (connect and handshake are then part of it).
final class TerminalFleet: Sendable {
    private let gate = DispatchSemaphore(value: 0)
    private let finished = DispatchGroup()
    private let results = Mutex<[Int: Result<UInt64, any Error>]>([:])
    private let lastFinish = Mutex<UInt64>(0)
    private let count: Int

    /// Terminal n (from 0) pushes `replicas[n]` to `hub` as store `storeID(n + 1)`.
    init(_ replicas: [Replica], hub address: SocketAddress, client: SyncBenchmark.Client) {
        count = replicas.count
        for (index, replica) in replicas.enumerated() {
            finished.enter()
            let scope = "store:" + storeID(index + 1)
            let thread = Thread { [self] in
                self.gate.wait()
                let result = Result<UInt64, any Error> {
                    switch client {
                    case .push:
                        return try PushClient(replica: replica, hub: address, scope: scope).pushAll().acknowledged
                    case .sync:
                        var options = SyncOptions(hub: address, scope: scope)
                        options.widestTableColumns = RetailSchema.widestTableColumns
                        return try SyncClient(replica: replica, options: options, logger: Logger.discarding).syncOnce().pushCursor
                    }
                }
                self.results.withLock { $0[index] = result }
                let now = monotonicNanos()
                self.lastFinish.withLock { $0 = max($0, now) }
                self.finished.leave()
            }
            thread.name = "bench.terminal.\(index)"
            thread.start()
        }
    }

    /// Lets every terminal go.
    func release() {
        for _ in 0..<count { gate.signal() }
    }

    /// When the last terminal finished (`monotonicNanos`; meaningful after `wait()`).
    var finishedAt: UInt64 { lastFinish.withLock { $0 } }

    /// Waits until every terminal is done; returns each one's last sequence the hub acknowledged,
    /// or throws the first terminal's failure.
    func wait() throws -> [UInt64] {
        finished.wait()
        let outcomes = results.withLock { $0 }
        return try (0..<count).map { index in
            guard let outcome = outcomes[index] else { throw BenchError.verification("terminal \(index) did not report") }
            return try outcome.get()
        }
    }
}
