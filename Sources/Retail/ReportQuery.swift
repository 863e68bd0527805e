import Foundation

/// What a consolidated view is asked for: which view, grouped how, over which days. The same
/// text parameters come from the command line (`storesync report`) and from VIEW_REQUEST.
public struct ReportQuery: Sendable, Hashable {
    public enum View: String, Sendable, CaseIterable {
        case sales, funnel, sla, stock
    }

    public enum Grouping: String, Sendable, CaseIterable {
        case region, store, guide, day
    }

    public var view: View
    public var grouping: Grouping
    /// First day included, as milliseconds since the epoch at 00:00 UTC (nil: from the start).
    public var fromMilliseconds: Int64?
    /// First day *not* included (the day after `--to`), 00:00 UTC (nil: up to now).
    public var untilMilliseconds: Int64?

    public init(view: View, grouping: Grouping = .store, fromMilliseconds: Int64? = nil, untilMilliseconds: Int64? = nil) {
        self.view = view
        self.grouping = grouping
        self.fromMilliseconds = fromMilliseconds
        self.untilMilliseconds = untilMilliseconds
    }

    /// Parses `view` and the parameters `by`, `from`, `to` (dates `YYYY-MM-DD`, UTC, inclusive).
    public init(view name: String, parameters: [(name: String, value: String)]) throws(ReportError) {
        guard let view = View(rawValue: name) else {
            throw ReportError("unknown view \(name); views are \(View.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.init(view: view)
        for (parameter, value) in parameters {
            switch parameter {
            case "by":
                guard let grouping = Grouping(rawValue: value) else {
                    throw ReportError("by is one of \(Grouping.allCases.map(\.rawValue).joined(separator: ", ")), got \(value)")
                }
                self.grouping = grouping
            case "from":
                fromMilliseconds = try Self.dayStart(value, parameter: parameter)
            case "to":
                untilMilliseconds = try Self.dayStart(value, parameter: parameter) + Self.dayMilliseconds
            default:
                throw ReportError("unknown parameter \(parameter); parameters are by, from, to")
            }
        }
        if let from = fromMilliseconds, let until = untilMilliseconds, until <= from {
            throw ReportError("to is before from")
        }
    }

    /// The parameters as VIEW_REQUEST carries them.
    public var parameters: [(name: String, value: String)] {
        var list = [(name: "by", value: grouping.rawValue)]
        if let fromMilliseconds { list.append(("from", Self.dayText(fromMilliseconds))) }
        if let untilMilliseconds { list.append(("to", Self.dayText(untilMilliseconds - Self.dayMilliseconds))) }
        return list
    }

    static let dayMilliseconds: Int64 = 86_400_000

    private static func dayStart(_ text: String, parameter: String) throws(ReportError) -> Int64 {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else {
            throw ReportError("\(parameter) must be a date YYYY-MM-DD, got \(text)")
        }
        return daysFromCivil(year: year, month: month, day: day) * dayMilliseconds
    }

    /// A UTC day as `YYYY-MM-DD`.
    public static func dayText(_ milliseconds: Int64) -> String {
        let (year, month, day) = civilFromDays(Int64((Double(milliseconds) / Double(dayMilliseconds)).rounded(.down)))
        return String(format: "%04d-%02d-%02d", year, month, day)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil algorithms: exact for the proleptic Gregorian calendar.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civilFromDays(_ days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}

/// A view request that cannot be answered as asked.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
