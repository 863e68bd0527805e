import Dispatch
import Retail
import SyncEngine
import Synchronization

/// Tells when a row is in a replica: the receiving terminal's agent calls `check` after each
/// pull it applied, and the waiting thread also looks every few milliseconds in case a pull
/// ended without a `.synced` event. The time recorded is when a query on the replica first
/// found the row committed, never when a message about it arrived.
final class ArrivalProbe: Sendable {
    private struct State {
        var key: String?
        var arrivedAt: UInt64?
    }

    private let state = Mutex(State())
    private let arrived = DispatchSemaphore(value: 0)
    private let query: String

    init() {
        let leads = RetailSchema.leads
        query = "SELECT count(*) FROM \(leads.name.rawValue) WHERE \(leads.primaryKey.rawValue) = ?"
    }

    /// Starts watching for the lead with primary key `key`.
    func expect(_ key: String) {
        state.withLock { $0 = State(key: key, arrivedAt: nil) }
    }

    /// Records the time if the expected row is now in `replica`.
    func check(_ replica: Replica) {
        guard let key = state.withLock({ $0.arrivedAt == nil ? $0.key : nil }) else { return }
        let query = self.query
        let present = (try? replica.read { database in try database.fetchScalar(query, [.text(key)])?.integerValue ?? 0 }) ?? 0
        guard present > 0 else { return }
        let now = monotonicNanos()
        let first = state.withLock { state -> Bool in
            guard state.key == key, state.arrivedAt == nil else { return false }
            state.arrivedAt = now
            return true
        }
        if first { arrived.signal() }
    }

    /// When the expected row arrived in `replica`, or nil after `timeout`.
    func wait(for replica: Replica, timeout: Duration) -> UInt64? {
        let deadline = monotonicNanos() + UInt64(timeout.components.seconds) * 1_000_000_000
        while monotonicNanos() < deadline {
            if arrived.wait(timeout: .now() + .milliseconds(5)) == .success {
                return state.withLock { $0.arrivedAt }
            }
            check(replica)
        }
        return nil
    }
}
