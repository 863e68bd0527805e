import Foundation

/// A value reached only while holding its lock (SwiftNIO's `NIOLockedValueBox`, in small).
///
/// `@unchecked Sendable` is true because the only access to `value` is inside
/// `withLockedValue`, under `lock`. It exists for what `Synchronization.Mutex` cannot hold
/// comfortably: non-Sendable values (a SQLite connection, a Dispatch source) captured by
/// escaping closures.
public final class LockBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    public func withLockedValue<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
