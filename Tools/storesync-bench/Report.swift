import Foundation

/// One measured scenario: the engine's throughput beside a baseline measured in the same run.
struct Measurement {
    var scenario: String
    var unit: String
    var opsPerSecond: Double
    var baselineOpsPerSecond: Double
    /// The issue's target for engine ÷ baseline, if it sets one.
    var targetRatio: Double?

    var ratio: Double { baselineOpsPerSecond > 0 ? opsPerSecond / baselineOpsPerSecond : 0 }

    var json: String {
        var fields = [
            "\"scenario\":\"\(scenario)\"",
            "\"unit\":\"\(unit)\"",
            "\"ops_per_s\":\(Int(opsPerSecond.rounded()))",
            "\"baseline_ops_per_s\":\(Int(baselineOpsPerSecond.rounded()))",
            "\"ratio\":\(String(format: "%.3f", ratio))",
        ]
        if let targetRatio { fields.append("\"target_ratio\":\(targetRatio)") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}

/// Prints measurements as a table (for people) or JSON lines (for scripts).
struct Reporter {
    var json: Bool

    func header(_ title: String) {
        guard !json else { return }
        print(title)
        print(pad("scenario", 34) + pad("engine/s", 14, right: true) + pad("baseline/s", 14, right: true)
              + pad("ratio", 9, right: true) + pad("target", 9, right: true))
    }

    func emit(_ measurement: Measurement) {
        if json {
            print(measurement.json)
        } else {
            let target = measurement.targetRatio.map { String(format: "≥ %.2f", $0) } ?? "-"
            print(pad(measurement.scenario, 34)
                  + pad(formatCount(measurement.opsPerSecond) + " " + measurement.unit, 14, right: true)
                  + pad(formatCount(measurement.baselineOpsPerSecond), 14, right: true)
                  + pad(String(format: "%.2f×", measurement.ratio), 9, right: true)
                  + pad(target, 9, right: true))
        }
        fflush(nil)
    }

    private func formatCount(_ value: Double) -> String {
        value >= 10_000 ? String(format: "%.0fk", value / 1_000) : String(format: "%.0f", value)
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}

/// Wall time of `body` in seconds, on the monotonic clock.
func measureSeconds(_ body: () throws -> Void) rethrows -> Double {
    var start = timespec()
    var end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    try body()
    clock_gettime(CLOCK_MONOTONIC, &end)
    return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
}
