import Dispatch
import Foundation
import SQLite
import LockBox

/// Notices commits made to a replica file by other processes (a guide's `storesync lead add`
/// while `storesync sync --live` runs), by polling SQLite's `PRAGMA data_version` on a
/// connection of its own: a cheap read that changes whenever another connection commits.
public final class ReplicaChangeWatcher: Sendable {
    private struct State {
        var database: Database?
        var version: Int64
        var timer: (any DispatchSourceTimer)?
    }

    private let state: LockBox<State>

    public init(path: String, interval: Duration = .milliseconds(20), onChange: @escaping @Sendable () -> Void) throws {
        var options = Database.Options()
        options.readOnly = true
        let database = try Database(path: path, options: options)
        let version = try database.fetchScalar("PRAGMA data_version")?.integerValue ?? 0
        state = LockBox(State(database: database, version: version, timer: nil))
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "storesync.change-watcher"))
        let milliseconds = max(1, Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000))
        timer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(milliseconds))
        timer.setEventHandler { [state] in
            let changed = state.withLockedValue { state -> Bool in
                guard let database = state.database,
                      let current = try? database.fetchScalar("PRAGMA data_version")?.integerValue else { return false }
                defer { state.version = current }
                return current != state.version
            }
            if changed { onChange() }
        }
        state.withLockedValue { $0.timer = timer }
        timer.resume()
    }

    public func stop() {
        state.withLockedValue { state in
            state.timer?.cancel()
            state.timer = nil
            state.database = nil
        }
    }
}
