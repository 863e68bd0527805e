import Dispatch
import Glibc

/// A failed socket call: which call, its errno (0 when the failure is not errno-based, such as
/// a resolver error or a timeout we decided on), and a short detail for people.
///
/// Never carries payload bytes: only call names, codes, addresses and sizes.
public struct NetError: Error, Sendable, Hashable, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public let detail: String

    public init(call: String, errno: Int32, detail: String = "") {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(self.call) failed"
        if self.errno != 0 {
            text += ": \(String(cString: strerror(self.errno))) (errno \(self.errno))"
        }
        if !self.detail.isEmpty { text += ": \(self.detail)" }
        return text
    }
}

/// What a non-blocking call did: completed with a value, or would have had to wait.
enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

/// The one way this module makes a system call that reports failure as -1 and errno.
///
/// Retries on `EINTR`, maps `EAGAIN`/`EWOULDBLOCK` (and any errno in `alsoWouldBlock`) to
/// `.wouldBlock`, and throws every other failure as a `NetError` naming the call.
/// Not for `close`, which must never be retried (see `closeDescriptor`).
@inline(__always)
func nonBlockingCall<T: FixedWidthInteger>(
    _ call: String, alsoWouldBlock: [Int32] = [], _ body: () -> T
) throws(NetError) -> IOResult<T> {
    while true {
        let result = body()
        if result != -1 { return .done(result) }
        let code = Glibc.errno
        if code == EINTR { continue }
        if code == EAGAIN || code == EWOULDBLOCK || alsoWouldBlock.contains(code) { return .wouldBlock }
        throw NetError(call: call, errno: code)
    }
}

/// `nonBlockingCall` for calls that never wait (socket, bind, setsockopt…): "would block"
/// is itself an error there.
@inline(__always) @discardableResult
func systemCall<T: FixedWidthInteger>(_ call: String, _ body: () -> T) throws(NetError) -> T {
    switch try nonBlockingCall(call, body) {
    case .done(let value): return value
    case .wouldBlock: throw NetError(call: call, errno: EAGAIN)
    }
}

/// Closes a descriptor. Called exactly once per descriptor, by its single owner.
///
/// Never retried: on Linux the descriptor is released even when `close` reports `EINTR`,
/// and a retry could close a descriptor another thread has just been given.
func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

/// Monotonic nanoseconds on the clock Dispatch timers use.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

extension Duration {
    /// Whole nanoseconds, clamped at zero and at `UInt64.max`.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return UInt64.max }
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(max(0, attoseconds) / 1_000_000_000))
        return overflow2 ? UInt64.max : total
    }
}
