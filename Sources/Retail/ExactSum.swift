import SQLite

/// Sums that no data can make fail or wrap, for the views.
///
/// SQLite's `SUM` of integers raises "integer overflow" (one hostile row made every view by
/// region fail for everyone), and `total()` is floating point (inexact past 2^53). So a view
/// sums each value in two halves, `value / 10^8` and `value % 10^8`: with values bounded by the
/// schema (at most 10^11), neither half-sum can overflow in any table SQLite can hold, and
/// the exact total is put together here. Values of the wrong storage class or out of the
/// schema's range (rows a replica got before hubs validated) count as nothing.
struct ExactSum: Sendable, Hashable {
    static let split: Int64 = 100_000_000

    var high: Int64
    var low: Int64

    /// The SQL for the two half-sums of `column`, counting only INTEGERs in `range`.
    static func sql(_ column: String, _ range: ClosedRange<Int64>) -> String {
        let guarded = "CASE WHEN typeof(\(column)) = 'integer' AND \(column) BETWEEN \(range.lowerBound) AND \(range.upperBound) THEN \(column) END"
        return "SUM(\(guarded) / \(split)), SUM(\(guarded) % \(split))"
    }

    /// The sum from the two columns `sql` made (NULL when no value counted: 0).
    init(high: SQLValue, low: SQLValue) {
        self.high = high.integerValue ?? 0
        self.low = low.integerValue ?? 0
    }

    init(high: Int64, low: Int64) {
        self.high = high
        self.low = low
    }

    /// Carries the low half into the high one so that 0 ≤ |low| < 10^8 with the sign of the total.
    private var normalized: (high: Int64, low: Int64) {
        var high = self.high.addingReportingOverflow(low / Self.split).partialValue
        var low = self.low % Self.split
        if high > 0 && low < 0 {
            high -= 1
            low += Self.split
        } else if high < 0 && low > 0 {
            high += 1
            low -= Self.split
        }
        return (high, low)
    }

    /// The total as an integer, or nil when it does not fit 64 bits.
    var int64: Int64? {
        let (high, low) = normalized
        let (scaled, overflow) = high.multipliedReportingOverflow(by: Self.split)
        guard !overflow else { return nil }
        let (total, overflowAdding) = scaled.addingReportingOverflow(low)
        return overflowAdding ? nil : total
    }

    /// The exact total in decimal digits, with a point before the last `scale` digits.
    func decimal(scale: Int) -> String {
        let (high, low) = normalized
        let negative = high < 0 || low < 0
        let lowDigits = String(low.magnitude)
        var digits = (high == 0 ? "" : String(high.magnitude)) + (high == 0 ? lowDigits : String(repeating: "0", count: 8 - lowDigits.count) + lowDigits)
        if scale > 0 {
            if digits.count <= scale { digits = String(repeating: "0", count: scale - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -scale))
        }
        return (negative ? "-" : "") + digits
    }

    /// As a view cell: an INTEGER when it fits 64 bits, else its exact digits as TEXT.
    var value: SQLValue { int64.map(SQLValue.integer) ?? .text(decimal(scale: 0)) }
}
