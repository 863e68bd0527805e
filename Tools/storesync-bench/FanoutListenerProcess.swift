import Foundation
import Net

/// The child side of `fanout` (hidden command `fanout-listeners`): connects `count` passive live
/// sessions to the hub, the terminals `firstTerminal...` of the fleet (ten per store, so the
/// first of them may share store S001 with the writer), and answers the parent on standard
/// output, one line per command:
///
///     (start)      → ready                     every session connected, caught up and live
///     arm <seq>    → armed                     watch for sessions to pull past <seq>
///     wait         → settled <t> <pulled> <cpu>
///                    every session whose scope holds the write (store S001, or all) has it,
///                    the last at <t> (CLOCK_MONOTONIC ns, comparable with the parent's; 0 if
///                    none is expected); <pulled> sessions pulled it; <cpu> ns used so far
///     stop         → (exit 0)
///
/// Any failure prints `failed <reason>` and exits 1. The sessions live in this process so that
/// their CPU and their Dispatch threads are not the hub's.
enum FanoutListenerProcess {
    static let quiet: Duration = .milliseconds(20)

    static func run(hub: SocketAddress, count: Int, firstTerminal: Int, scope: BenchScope) -> Never {
        let stores = (0..<count).map { BenchScope.store(ofTerminal: firstTerminal + $0) }
        let board = ListenerBoard(expected: stores.map { scope == .all || $0 == BenchScope.writtenStore })
        var listeners: [PassiveListener] = []
        func reply(_ line: String) {
            print(line)
            fflush(nil)
        }
        func fail(_ reason: String) -> Never {
            reply("failed \(reason.replacingOccurrences(of: "\n", with: " "))")
            exit(1)
        }
        do {
            for (index, store) in stores.enumerated() {
                let listener = try PassiveListener(index: index, hub: hub, scope: "store:\(store)", board: board)
                listener.start()
                listeners.append(listener)
            }
        } catch {
            fail("cannot connect a passive session: \(error)")
        }
        let deadline = monotonicNanos() + 60_000_000_000
        while board.liveCount < count {
            if let failure = board.failure { fail(failure) }
            if monotonicNanos() > deadline { fail("\(count - board.liveCount) sessions did not become live in 60 s") }
            usleep(5_000)
        }
        reply("ready")
        while let line = readLine() {
            let words = line.split(separator: " ")
            switch words.first {
            case "arm":
                guard words.count == 2, let sequence = UInt64(words[1]) else { fail("bad command \(line)") }
                board.arm(after: sequence)
                reply("armed")
            case "wait":
                guard let settled = board.waitSettled(quiet: quiet, timeout: FanoutBenchmark.waitLimit) else {
                    fail(board.failure ?? "the sessions holding the write did not all pull it in \(FanoutBenchmark.waitLimit)")
                }
                reply("settled \(settled.lastExpectedAt ?? 0) \(settled.pulled) \(processCPUNanoseconds())")
            case "stop":
                board.stop()
                for listener in listeners { listener.close() }
                exit(0)
            default:
                fail("unknown command \(line)")
            }
        }
        exit(0)
    }
}
