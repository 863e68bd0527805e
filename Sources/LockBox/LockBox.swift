import Foundation

/// A value reached only while holding its lock (SwiftNIO's `NIOLockedValueBox`, in small).
///
/// It is `Sendable` only when its value is: the lock serialises access, but it cannot stop a
/// non-Sendable value (a SQLite connection, a class with shared mutable state) from escaping
/// through `withLockedValue`'s result or a captured reference, and being used unlocked on
/// another thread. Non-Sendable state needs an owner that never hands it out (the engine's
/// `ConnectionOwner`) or `Synchronization.Mutex`, whose `sending` rules the compiler checks.
public final class LockBox<Value> {
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

/// True because the only access to `value` is inside `withLockedValue`, under `lock`, and a
/// Sendable value may cross threads itself.
extension LockBox: @unchecked Sendable where Value: Sendable {}
