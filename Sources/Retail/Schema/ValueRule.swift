public import SQLite

/// The SQLite storage class of a value, as the application schema names it. Knowing a cell's
/// class is not knowing its value, so refusals may say which class they got.
public enum StorageClass: String, Sendable, Hashable, CaseIterable {
    case null = "NULL"
    case integer = "INTEGER"
    case real = "REAL"
    case text = "TEXT"
    case blob = "BLOB"

    public init(of value: SQLValue) {
        switch value {
        case .null: self = .null
        case .integer: self = .integer
        case .real: self = .real
        case .text: self = .text
        case .blob: self = .blob
        }
    }
}

/// What a non-NULL value of a column must be. Each case names the storage classes it accepts;
/// SQLite's column affinity would otherwise turn a wrong class into something else silently
/// (the text `'12'` into the integer 12) or keep it as is (`'not a number'` in an INTEGER
/// column, which views then sum as 0), so the class is checked exactly.
public enum ValueRule: Sendable, Hashable {
    /// An INTEGER in `range`. Ranges are chosen so that no sum a view computes can overflow.
    case integer(ClosedRange<Int64>)
    /// A finite REAL (or an INTEGER, which a REAL column stores as REAL) in `range`.
    case real(ClosedRange<Double>)
    /// TEXT of the given format (every format bounds its length in UTF-8 bytes).
    case text(TextFormat)

    /// The storage classes a non-NULL value may have.
    public var storageClasses: [StorageClass] {
        switch self {
        case .integer: return [.integer]
        case .real: return [.real, .integer]
        case .text: return [.text]
        }
    }

    /// Why `value` (not NULL) breaks the rule, or nil when it keeps it.
    public func violation(_ value: SQLValue) -> SchemaViolation.Reason? {
        switch (self, value) {
        case (.integer(let range), .integer(let number)):
            return range.contains(number) ? nil : .outOfRange(Self.describe(range))
        case (.real(let range), .real(let number)):
            guard number.isFinite else { return .notFinite }
            return range.contains(number) ? nil : .outOfRange(Self.describe(range))
        case (.real(let range), .integer(let number)):
            return range.contains(Double(number)) ? nil : .outOfRange(Self.describe(range))
        case (.text(let format), .text(let text)):
            return format.violation(text)
        default:
            return .wrongType(expected: storageClasses, got: StorageClass(of: value))
        }
    }

    /// The rule as SCHEMA.md states it (the doc test compares the two).
    public var specification: String {
        switch self {
        case .integer(let range): return Self.describe(range)
        case .real(let range): return Self.describe(range) + ", finite"
        case .text(let format): return format.specification
        }
    }

    static func describe(_ range: ClosedRange<Int64>) -> String {
        "\(bound(range.lowerBound)) … \(bound(range.upperBound))"
    }

    static func describe(_ range: ClosedRange<Double>) -> String {
        "\(bound(range.lowerBound)) … \(bound(range.upperBound))"
    }

    /// Bounds read as people write them: powers of ten and the 64-bit limits by name.
    private static func bound(_ value: Int64) -> String {
        switch value {
        case .min: return "-2^63"
        case .max: return "2^63-1"
        case RetailBounds.maximumMilliseconds: return "2^48-1"
        default:
            var magnitude = value.magnitude
            var exponent = 0
            while magnitude >= 10, magnitude % 10 == 0 {
                magnitude /= 10
                exponent += 1
            }
            if magnitude == 1, exponent >= 6 { return (value < 0 ? "-" : "") + "10^\(exponent)" }
            return "\(value)"
        }
    }

    private static func bound(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? bound(Int64(value)) : "\(value)"
    }
}
