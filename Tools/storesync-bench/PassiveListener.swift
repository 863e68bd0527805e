import Dispatch
import Glibc
import Logging
import Net
import SyncEngine
import Synchronization
import Wire

/// Where every passive session's pulls have reached. Before each write the benchmark arms it
/// with the hub's latest sequence; then it tells when every session that should get the write
/// (in its scope) has pulled past it, and how many sessions pulled at all.
final class ListenerBoard: Sendable {
    private struct State {
        var cursors: [UInt64]
        var live: [Bool]
        var liveCount = 0
        var armedAfter: UInt64 = .max
        var expectedReached = 0
        var pulled = 0
        var lastExpectedAt: UInt64 = 0
        var outstandingPulls = 0
        var lastActivity: UInt64 = 0
        var stopping = false
        var failure: String?
    }

    let count: Int
    /// The sessions whose scope holds the benchmark's writes.
    let expected: [Bool]
    let expectedCount: Int
    private let state: Mutex<State>

    init(expected: [Bool]) {
        count = expected.count
        self.expected = expected
        expectedCount = expected.filter { $0 }.count
        state = Mutex(State(cursors: Array(repeating: 0, count: expected.count), live: Array(repeating: false, count: expected.count)))
    }

    var liveCount: Int { state.withLock { $0.liveCount } }
    var failure: String? { state.withLock { $0.failure } }

    func pullSent() {
        let now = monotonicNanos()
        state.withLock { state in
            state.outstandingPulls += 1
            state.lastActivity = now
        }
    }

    /// A session's pull was answered: it holds everything up to `cursor`; `live` once caught up.
    func advance(_ index: Int, to cursor: UInt64, live: Bool) {
        let now = monotonicNanos()
        state.withLock { state in
            state.outstandingPulls -= 1
            state.lastActivity = now
            let previous = state.cursors[index]
            state.cursors[index] = cursor
            if live && !state.live[index] {
                state.live[index] = true
                state.liveCount += 1
            }
            guard previous <= state.armedAfter && cursor > state.armedAfter else { return }
            state.pulled += 1
            if expected[index] {
                state.expectedReached += 1
                state.lastExpectedAt = max(state.lastExpectedAt, now)
            }
        }
    }

    /// Starts watching for sessions to pull past `sequence` (the hub's latest before a write).
    func arm(after sequence: UInt64) {
        state.withLock { state in
            state.armedAfter = sequence
            state.pulled = 0
            state.expectedReached = 0
            state.lastExpectedAt = 0
        }
    }

    /// Waits until every expected session pulled past the armed sequence and the whole fleet has
    /// been quiet for `quiet` (no pull in flight or answered), so that sessions notified of a write
    /// they have no use for are done before the next one. Returns when the last expected session
    /// got the write (nil if none is expected) and how many sessions pulled; nil on timeout.
    func waitSettled(quiet: Duration, timeout: Duration) -> (lastExpectedAt: UInt64?, pulled: Int)? {
        let quietNanos = UInt64(quiet.components.seconds) * 1_000_000_000 + UInt64(quiet.components.attoseconds / 1_000_000_000)
        let deadline = monotonicNanos() + UInt64(timeout.components.seconds) * 1_000_000_000
        while monotonicNanos() < deadline {
            let now = monotonicNanos()
            let settled = state.withLock { state -> (UInt64?, Int)? in
                guard state.failure == nil, state.expectedReached == expectedCount, state.outstandingPulls == 0,
                      now - state.lastActivity >= quietNanos else { return nil }
                return (expectedCount > 0 ? state.lastExpectedAt : nil, state.pulled)
            }
            if let settled { return settled }
            if failure != nil { return nil }
            usleep(1_000)
        }
        return nil
    }

    func fail(_ message: String) {
        state.withLock { state in
            if !state.stopping && state.failure == nil { state.failure = message }
        }
    }

    func stop() { state.withLock { $0.stopping = true } }
}

/// A terminal reduced to its live session, for the hub's side of a fanout: HELLO, a live PULL,
/// and on every NOTIFY another PULL from where the last batch ended. The batches are decoded and
/// dropped, not applied: the hub does all of its work (NOTIFY, read, encode, send), and the
/// benchmark machine does not also run hundreds of terminal databases a real fleet runs elsewhere.
/// No thread of its own: the connection's handlers run on Dispatch.
final class PassiveListener: Sendable {
    let index: Int
    let connection: FramedConnection
    private let board: ListenerBoard
    private let replicaID = ReplicaID.random()
    private let scope: String
    /// Only the connection's queue touches it; a mutex keeps `Sendable` honest.
    private let cursor = Mutex<UInt64>(0)
    static let maxCells: UInt32 = 20_000

    init(index: Int, hub: SocketAddress, scope: String, board: ListenerBoard) throws {
        self.index = index
        self.board = board
        self.scope = scope
        connection = try Dialer.connect(to: hub, timeout: .seconds(10), limits: ConnectionLimits(), logger: Logger.discarding)
    }

    func start() {
        let board = self.board
        let index = self.index
        connection.start(onMessage: { [self] message in
            handle(message)
        }, onClose: { reason in
            board.fail("passive session \(index) closed: \(reason)")
        })
        connection.send(.hello(Hello(
            protocolVersions: WireFormat.supportedProtocolVersions, replica: replicaID, role: .terminal, scope: scope,
            clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [])))
    }

    func close() { connection.close(flushing: false) }

    private func pull() {
        let from = cursor.withLock { $0 }
        board.pullSent()
        connection.send(.pull(Pull(fromSequence: from, maxCells: Self.maxCells, live: true)))
    }

    private func handle(_ message: Message) {
        switch message {
        case .helloAck:
            pull()
        case .pullBatch(let batch):
            cursor.withLock { $0 = batch.changeset.toSequence }
            board.advance(index, to: batch.changeset.toSequence, live: !batch.more)
            if batch.more { pull() }
        case .notify:
            pull()
        case .ping(let nonce):
            connection.send(.pong(nonce: nonce))
        case .error(let error):
            board.fail("the hub sent ERROR \(error.code) to passive session \(index): \(error.message)")
        default:
            board.fail("passive session \(index) got an unexpected \(message.type)")
        }
    }
}
