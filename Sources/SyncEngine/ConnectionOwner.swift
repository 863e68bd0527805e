import Foundation

/// The one owner of a replica's non-Sendable SQLite state: a connection opened in SQLite's
/// multi-thread mode (no locking of its own), its prepared statements, the counters beside it.
/// It serialises every use of that state, which is what makes sharing the replica between
/// threads sound.
///
/// Why not `Synchronization.Mutex`: the engine lends the connection to the caller's closures
/// (`Replica.read { database in … }`, `write { tx in … }`), and `Mutex.withLock`'s
/// `inout sending` state may not meet a caller's non-Sendable closure. Why not `LockBox`: a lock
/// box is Sendable only when its value is.
///
/// `@unchecked Sendable` is true because:
/// - the state is handed over at `init` with `sending` (its creator keeps no reference) and is
///   reached only inside `withState`, under `lock`, one caller at a time;
/// - `withState`'s closure is non-escaping and what it returns is `Sendable`, so the state
///   (and the connection it holds) never leaves the lock through the owner's API; the closures
///   the engine passes it to are documented as valid only inside the call;
/// - `close` drops the state under the same lock, and later calls fail instead of touching it.
final class ConnectionOwner<State: AnyObject>: @unchecked Sendable {
    private let lock = NSLock()
    private var state: State?
    private let closedError: @Sendable () -> any Error

    init(_ state: sending State, closedError: @escaping @Sendable () -> any Error) {
        self.state = state
        self.closedError = closedError
    }

    /// Runs `body` with the state under the lock; throws `closedError()` once closed.
    func withState<T: Sendable>(_ body: (State) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard let state else { throw closedError() }
        return try body(state)
    }

    /// Like `withState`, with nil instead of an error once closed.
    func withStateIfOpen<T: Sendable>(_ body: (State) throws -> T) rethrows -> T? {
        lock.lock()
        defer { lock.unlock() }
        guard let state else { return nil }
        return try body(state)
    }

    /// Runs `body` with the state one last time (if still open), then drops it: its connection
    /// and statements are finalized when the last reference goes, here. Closing twice is a no-op.
    func close<T: Sendable>(_ body: (State) throws -> T) throws -> T? {
        lock.lock()
        defer { lock.unlock() }
        guard let current = state else { return nil }
        defer { state = nil }
        return try body(current)
    }
}
