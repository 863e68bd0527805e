import Synchronization
import Terminal

/// What a regional hub's relay to HQ (`RetailHub`'s `UpstreamRelay`, assembled by
/// `RetailHubNode` as `storesync hub --upstream` assembles it) did, counted from its agent's
/// events: disconnections (each followed by a reconnection with backoff) and rows moved.
final class RelayTally: Sendable {
    struct Counts {
        var disconnections = 0
        /// Rows pushed to HQ and pulled from it in the current session (as its last report says).
        var pushedRows = 0
        var pulledRows = 0
    }

    private let counts = Mutex(Counts())

    func record(_ event: LiveSyncAgent.Event) {
        counts.withLock { counts in
            switch event {
            case .synced(let report):
                counts.pushedRows = report.pushedRows
                counts.pulledRows = report.pulledRows
            case .disconnected:
                counts.disconnections += 1
            case .connected, .backingOff:
                break
            }
        }
    }

    var current: Counts { counts.withLock { $0 } }
}
