import Dispatch
import Foundation
import SQLite
import LockBox
import Synchronization

/// Notices commits made to a replica file by other processes (a guide's `storesync lead add`
/// while `storesync sync --live` runs), by polling SQLite's `PRAGMA data_version` on a
/// connection of its own: a cheap read that changes whenever another connection commits.
public final class ReplicaChangeWatcher: Sendable {
    /// The watcher's connection and what it last saw; a `Mutex` owns them (handed over with
    /// `sending`), since a connection is not Sendable.
    private struct State {
        var database: Database?
        var version: Int64
    }

    private final class Shared: Sendable {
        let state: Mutex<State>
        init(_ state: sending State) { self.state = Mutex(state) }
    }

    /// A dispatch timer that may be cancelled from any thread. `@unchecked Sendable` is true: a
    /// dispatch source synchronises its own state; Linux's Dispatch overlay lacks the annotation.
    private struct Timer: @unchecked Sendable {
        let source: any DispatchSourceTimer
    }

    private let shared: Shared
    private let timer = LockBox<Timer?>(nil)

    public init(path: String, interval: Duration = .milliseconds(20), onChange: @escaping @Sendable () -> Void) throws {
        var options = Database.Options()
        options.readOnly = true
        let database = try Database(path: path, options: options)
        let version = try database.fetchScalar("PRAGMA data_version")?.integerValue ?? 0
        let shared = Shared(State(database: database, version: version))
        self.shared = shared
        let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "storesync.change-watcher"))
        let milliseconds = max(1, Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000))
        source.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(milliseconds))
        source.setEventHandler {
            let changed = shared.state.withLock { state -> Bool in
                guard let database = state.database,
                      let current = try? database.fetchScalar("PRAGMA data_version")?.integerValue else { return false }
                defer { state.version = current }
                return current != state.version
            }
            if changed { onChange() }
        }
        timer.withLockedValue { $0 = Timer(source: source) }
        source.resume()
    }

    public func stop() {
        timer.withLockedValue { timer in
            timer?.source.cancel()
            timer = nil
        }
        shared.state.withLock { $0.database = nil }
    }
}
