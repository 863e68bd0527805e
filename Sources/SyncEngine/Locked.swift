import Foundation

/// A value reached only while holding its lock.
///
/// `@unchecked Sendable` is true here because the only access to `value` is inside
/// `withLockedValue`, under `lock`. Used where the guarded value is a non-Sendable
/// object graph (a SQLite connection and its statements) that never leaves the lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLockedValue<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
