import SyncEngine
import Synchronization

/// The demo's time, shared by every replica of the simulated chain: it stands at the simulated
/// tick and moves one millisecond per reading. Every write therefore gets a reading of its own,
/// in the order the simulation makes them, so last-writer-wins outcomes (and the central rules'
/// "earliest by version") follow the story, never the speed of the machine or the random replica
/// ids that break exact ties: a `--seed` always gives the same result.
final class DemoClock: Sendable {
    private let state = Mutex((floor: UInt64(0), last: UInt64(0)))

    /// Moves the clock to a simulated time (never backwards).
    func advance(to milliseconds: Int64) {
        state.withLock { $0.floor = max($0.floor, UInt64(max(0, milliseconds))) }
    }

    func read() -> UInt64 {
        state.withLock { state in
            state.last = max(state.floor, state.last + 1)
            return state.last
        }
    }

    var wallClock: WallClock {
        { [self] in self.read() }
    }
}
