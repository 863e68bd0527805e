import Foundation

/// A target from the issue: a figure must stay at or below (or at or above) a bound.
enum Target {
    case atMost(Double)
    case atLeast(Double)

    func isMet(by value: Double) -> Bool {
        switch self {
        case .atMost(let bound): return value <= bound
        case .atLeast(let bound): return value >= bound
        }
    }

    var bound: Double {
        switch self {
        case .atMost(let bound), .atLeast(let bound): return bound
        }
    }

    var symbol: String {
        switch self {
        case .atMost: return "≤"
        case .atLeast: return "≥"
        }
    }
}

/// One figure of a network benchmark (a time, a rate, a latency, a size), with the issue's
/// target when it sets one. Unlike `Measurement` it has no baseline of its own: the baselines
/// (the local merge rate, the fsync floor) are figures of the same run, printed beside it.
struct Figure {
    var scenario: String
    var value: Double
    var unit: String
    var target: Target?
    /// Extra JSON fields (already encoded values), e.g. counts that explain the figure.
    var details: [(String, String)] = []

    var verdict: String {
        guard let target else { return "" }
        return target.isMet(by: value) ? "met" : "MISSED"
    }

    var json: String {
        var fields = [
            "\"scenario\":\"\(scenario)\"",
            "\"unit\":\"\(unit)\"",
            "\"value\":\(formatNumber(value, decimals: 3))",
        ]
        if let target {
            fields.append("\"target\":\"\(target.symbol) \(formatNumber(target.bound, decimals: 3))\"")
            fields.append("\"met\":\(target.isMet(by: value))")
        }
        for (key, value) in details { fields.append("\"\(key)\":\(value)") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}

/// Prints figures as a table (for people) or JSON lines (for scripts), like `Reporter`.
struct FigureReporter {
    var json: Bool

    /// The title and context lines (shape, load, disk) go to the table only; in JSON each
    /// context is a `"note"` object, so scripts keep one object per line.
    func header(_ title: String, notes: [String]) {
        if json {
            for note in notes { print("{\"note\":\"\(escape(note))\"}") }
        } else {
            print(title)
            for note in notes { print("  " + note) }
            print(pad("figure", 36) + pad("value", 20, right: true) + pad("target", 20, right: true) + "  ")
        }
        fflush(nil)
    }

    func emit(_ figure: Figure) {
        if json {
            print(figure.json)
        } else {
            let target = figure.target.map { "\($0.symbol) \(formatNumber($0.bound, decimals: 2)) \(figure.unit)" } ?? "-"
            print(pad(figure.scenario, 36) + pad("\(formatNumber(figure.value, decimals: 2)) \(figure.unit)", 20, right: true)
                  + pad(target, 20, right: true) + "  " + figure.verdict)
        }
        fflush(nil)
    }

    /// A progress line on standard error (setup of thousands of connections takes a while).
    func progress(_ message: String) {
        FileHandle.standardError.write(Data("storesync-bench: \(message)\n".utf8))
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}

/// A number with at most `decimals` decimals and no trailing zeros; large numbers as integers.
func formatNumber(_ value: Double, decimals: Int) -> String {
    if !value.isFinite { return "0" }
    if abs(value) >= 1_000 { return String(format: "%.0f", value) }
    var text = String(format: "%.\(decimals)f", value)
    if text.contains(".") {
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
    }
    return text
}
