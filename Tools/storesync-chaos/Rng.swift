/// The harness's own seeded generator (SplitMix64): every decision of a schedule (topology,
/// workload, faults, each proxied connection's fault plan) is drawn from one of these, so a seed
/// names a schedule. Timing still varies between runs (real processes, real sockets).
struct Rng: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A generator for a named sub-stream (a link, a connection), independent of this one's draws.
    func derived(_ salt: UInt64) -> Rng {
        var copy = Rng(seed: state ^ (salt &* 0x9E37_79B9_7F4A_7C15))
        _ = copy.next()
        return copy
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `range` (which must not be empty).
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        let width = UInt64(range.upperBound - range.lowerBound) &+ 1
        if width == 0 { return Int(truncatingIfNeeded: next()) }
        return range.lowerBound + Int(next() % width)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Log-uniform in [1, upper]: small values as likely as large ones.
    mutating func logUniform(_ upper: Int) -> Int {
        let value = Int(exp(unit() * log(Double(max(upper, 1)))))
        return min(max(value, 1), max(upper, 1))
    }

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[int(0...(items.count - 1))]
    }
}

import Foundation
