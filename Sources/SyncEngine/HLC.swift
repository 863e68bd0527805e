import Foundation
import Synchronization

/// A hybrid-logical-clock reading: 48 bits of milliseconds since the Unix epoch, 16 bits of counter.
///
/// Comparing the raw values compares (milliseconds, counter).
public struct HLCTimestamp: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init(milliseconds: UInt64, counter: UInt16) {
        self.rawValue = (milliseconds & HLCTimestamp.millisecondMask) << 16 | UInt64(counter)
    }

    public static let millisecondMask: UInt64 = (1 << 48) - 1
    public static let zero = HLCTimestamp(rawValue: 0)

    public var milliseconds: UInt64 { rawValue >> 16 }
    public var counter: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(milliseconds).\(counter)" }
}

/// Where the clock reads wall time, in milliseconds since the Unix epoch. Injected so tests can move time.
public typealias WallClock = @Sendable () -> UInt64

public let systemWallClock: WallClock = {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(max(0, spec.tv_sec)) * 1000 + UInt64(max(0, spec.tv_nsec)) / 1_000_000
}

/// A hybrid logical clock.
///
/// - `now()` never goes backwards, whatever the wall clock does: when the wall clock
///   stands still or steps back, the counter advances instead.
/// - `observe(_:)` moves the clock past a remote reading, so a write made after
///   receiving a change orders after it, but only for readings at most `maxForwardDrift`
///   ahead of our wall clock. A reading further ahead is refused with
///   `SyncError.clockSkew` and does not move the clock, so one device with a bad clock
///   cannot drag every replica into its future and win every later conflict.
public final class HybridLogicalClock: Sendable {
    public let maxForwardDriftMilliseconds: UInt64
    private let wallClock: WallClock
    private let state: Mutex<State>

    private struct State {
        var last: HLCTimestamp
        /// Added to the wall clock; set when a reference clock showed ours to be wrong.
        var offsetMilliseconds: Int64
    }

    public init(
        wallClock: @escaping WallClock = systemWallClock,
        maxForwardDriftMilliseconds: UInt64 = 5 * 60 * 1000,
        last: HLCTimestamp = .zero,
        offsetMilliseconds: Int64 = 0
    ) {
        self.wallClock = wallClock
        self.maxForwardDriftMilliseconds = maxForwardDriftMilliseconds
        self.state = Mutex(State(last: last, offsetMilliseconds: offsetMilliseconds))
    }

    /// Wall time corrected by the offset, in milliseconds.
    public func wallMilliseconds() -> UInt64 {
        state.withLock { Self.corrected(wallClock(), offset: $0.offsetMilliseconds) }
    }

    public var offsetMilliseconds: Int64 { state.withLock { $0.offsetMilliseconds } }
    public var last: HLCTimestamp { state.withLock { $0.last } }

    /// A new timestamp, greater than every one this clock returned or observed before.
    public func now() -> HLCTimestamp {
        let wall = wallClock()
        return state.withLock { state in
            let physical = Self.corrected(wall, offset: state.offsetMilliseconds) & HLCTimestamp.millisecondMask
            let next: HLCTimestamp
            if physical > state.last.milliseconds {
                next = HLCTimestamp(milliseconds: physical, counter: 0)
            } else if state.last.counter < UInt16.max {
                next = HLCTimestamp(milliseconds: state.last.milliseconds, counter: state.last.counter + 1)
            } else {
                // Counter exhausted within one millisecond: borrow the next millisecond.
                next = HLCTimestamp(milliseconds: state.last.milliseconds + 1, counter: 0)
            }
            state.last = next
            return next
        }
    }

    /// Checks a remote reading against the drift bound without moving the clock.
    public func check(_ remote: HLCTimestamp) throws(SyncError) {
        let wall = wallMilliseconds()
        if remote.milliseconds > wall &+ maxForwardDriftMilliseconds {
            throw SyncError.clockSkew(remoteMilliseconds: remote.milliseconds, localMilliseconds: wall)
        }
    }

    /// Moves the clock past a remote reading (after `check` accepted it).
    public func observe(_ remote: HLCTimestamp) throws(SyncError) {
        try check(remote)
        state.withLock { state in
            if remote > state.last { state.last = remote }
        }
    }

    /// Adopts a trusted reference time (the hub's) when our wall clock is wrong.
    ///
    /// Sets the offset so that corrected wall time equals `referenceMilliseconds`, and
    /// pulls `last` back to at most the corrected time: the caller re-stamps the local
    /// writes that carry the wrong future readings (`Replica.rebaseClock`).
    public func adoptReference(milliseconds referenceMilliseconds: UInt64) {
        let wall = wallClock()
        state.withLock { state in
            state.offsetMilliseconds = Int64(bitPattern: referenceMilliseconds) - Int64(bitPattern: wall)
            let ceiling = HLCTimestamp(milliseconds: referenceMilliseconds, counter: 0)
            if state.last > ceiling { state.last = ceiling }
        }
    }

    /// Raises `last` to at least `floor` (used at open, from the highest version on disk).
    public func raise(to floor: HLCTimestamp) {
        state.withLock { state in
            if floor > state.last { state.last = floor }
        }
    }

    private static func corrected(_ wall: UInt64, offset: Int64) -> UInt64 {
        let value = Int64(bitPattern: wall) &+ offset
        return value < 0 ? 0 : UInt64(value)
    }
}
