/// A stage of the lead funnel: reached → needs-confirmed → demo → negotiation → won, and lost,
/// which can end any open stage. A stage never moves back and never skips one.
public enum FunnelStage: String, CaseIterable, Sendable, Comparable {
    case reached
    case needsConfirmed = "needs-confirmed"
    case demo
    case negotiation
    case won
    case lost

    /// Reads a stage name; `needs_confirmed` (underscore) and any letter case are accepted.
    public init?(name: String) {
        if let exact = FunnelStage(rawValue: name) {
            self = exact
            return
        }
        self.init(rawValue: name.lowercased().replacingOccurrences(of: "_", with: "-"))
    }

    /// How far along the funnel: 1 (reached) to 4 (negotiation); both closed stages are 5.
    public var level: Int {
        switch self {
        case .reached: return 1
        case .needsConfirmed: return 2
        case .demo: return 3
        case .negotiation: return 4
        case .won, .lost: return 5
        }
    }

    /// A total order that extends `level`: lost before won. When both are recorded the funnel
    /// settles on won (see `FunnelRule`), and compensations are ordered by it.
    var rank: Int {
        switch self {
        case .lost: return 5
        case .won: return 6
        default: return level
        }
    }

    public static func < (lhs: FunnelStage, rhs: FunnelStage) -> Bool { lhs.rank < rhs.rank }

    public var isClosed: Bool { self == .won || self == .lost }

    /// The stages one step on from this one.
    public var next: [FunnelStage] {
        switch self {
        case .reached: return [.needsConfirmed, .lost]
        case .needsConfirmed: return [.demo, .lost]
        case .demo: return [.negotiation, .lost]
        case .negotiation: return [.won, .lost]
        case .won, .lost: return []
        }
    }

    /// Whether a write that set the stage to `to`, moving from `from` (nil: a new lead), is one
    /// allowed step. Setting the stage it already had is no move and allowed.
    public static func isStep(from: FunnelStage?, to: FunnelStage) -> Bool {
        guard let from else { return to == .reached }
        return from == to || from.next.contains(to)
    }
}

/// Grade of a lead from its score: A ≥ 85, B 60–84, C below 60 (and C without a score).
public enum LeadGrade: String, CaseIterable, Sendable {
    case a = "A"
    case b = "B"
    case c = "C"

    public init(score: Int64?) {
        guard let score else {
            self = .c
            return
        }
        self = score >= 85 ? .a : score >= 60 ? .b : .c
    }

    /// The follow-up window: A within 48 hours, B 72 hours, C 7 days.
    public var followUpMilliseconds: Int64 {
        switch self {
        case .a: return 48 * 3_600_000
        case .b: return 72 * 3_600_000
        case .c: return 7 * 24 * 3_600_000
        }
    }

    /// When the next action is due: the window after the last touch, or after creation before any touch.
    public func due(createdMs: Int64, lastTouchMs: Int64?) -> Int64 {
        (lastTouchMs ?? createdMs) + followUpMilliseconds
    }
}

/// Phone numbers as guides type them, and the normalised form duplicates are matched on.
public enum PhoneNumber {
    /// Removes spaces, dashes, dots and parentheses; a leading `00` becomes `+`. The result is
    /// an optional `+` and 6 to 15 digits (E.164 at most), or the input is refused. A number
    /// typed with and without its country code normalises differently (no guessing).
    public static func normalize(_ text: String) throws(RetailError) -> String {
        let invalid = RetailError.invalidValue(field: "--phone", expected: "6 to 15 digits, optionally with a leading + and spaces, dashes, dots or parentheses")
        var digits = ""
        var plus = false
        for (offset, character) in text.trimmingWhitespace().enumerated() {
            switch character {
            case "0"..."9": digits.append(character)
            case "+" where offset == 0: plus = true
            case " ", "-", ".", "(", ")": continue
            default: throw invalid
            }
        }
        if !plus, digits.hasPrefix("00") {
            digits.removeFirst(2)
            plus = true
        }
        guard (6...15).contains(digits.count) else { throw invalid }
        return (plus ? "+" : "") + digits
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}

/// Money as exact integer cents.
public enum Money {
    /// Parses a non-negative decimal amount with at most two decimals exactly: "12.34" is 1234
    /// cents, "12" 1200, "12.3" 1230. No sign, exponent, grouping or floating point.
    public static func cents(parsing text: String) throws(RetailError) -> Int64 {
        let invalid = RetailError.invalidValue(field: "--amount", expected: "a non-negative amount with at most two decimals, like 12.34")
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 15, whole.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw invalid
        }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        guard parts.count == 1 || (1...2).contains(fraction.count), fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw invalid
        }
        while fraction.count < 2 { fraction.append("0") }
        guard let units = Int64(whole), let cents = Int64(fraction) else { throw invalid }
        return units * 100 + cents
    }
}
