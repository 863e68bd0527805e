/// The numeric bounds of the application schema, chosen so that no view can overflow.
///
/// Views sum amounts and quantities over every row a replica holds. With a line at most 10^11
/// cents (a billion in currency), 64-bit sums overflow only past 92 million maximal lines in one
/// group; the views therefore sum in two halves (see `ExactSum`) and cannot overflow at all, and
/// these bounds keep each term small enough that the halves are exact.
public enum RetailBounds {
    /// One order line: 0 to 10^11 cents.
    public static let maximumAmountCents: Int64 = 100_000_000_000
    /// Units in one sale line, one stock signal, a threshold: at most 10^9.
    public static let maximumQuantity: Int64 = 1_000_000_000
    /// Times are milliseconds since the Unix epoch within the hybrid logical clock's 48 bits.
    public static let maximumMilliseconds: Int64 = (1 << 48) - 1
    /// A lead's score.
    public static let score: ClosedRange<Int64> = 0...100
    /// A visit's duration: a day at most.
    public static let visitMinutes: ClosedRange<Int64> = 0...1_440
    /// Half the Earth's circumference at the mean radius the promotion rule uses (20,015,115 m), rounded up.
    public static let maximumDistanceMeters: Int64 = 20_100_000

    static let time: ClosedRange<Int64> = 0...maximumMilliseconds
}
