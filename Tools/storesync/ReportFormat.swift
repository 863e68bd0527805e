import Foundation
import SQLite
import Retail

/// How `storesync report` prints a view: an aligned table for people, CSV (RFC 4180) or JSON
/// (an array of objects, one per row; exact decimals stay strings) for programs.
enum ReportFormat {
    case table, csv, json

    init(_ name: String) throws {
        switch name {
        case "table": self = .table
        case "csv": self = .csv
        case "json": self = .json
        default: throw UsageError(message: "--format is table, csv or json, got \(name)")
        }
    }

    func render(_ view: ViewTable) -> String {
        switch self {
        case .table: return Self.table(view)
        case .csv: return Self.csv(view)
        case .json: return Self.json(view)
        }
    }

    private static func text(_ value: SQLValue) -> String {
        switch value {
        case .null: return ""
        case .integer(let number): return String(number)
        case .real(let number): return String(format: "%.3f", number)
        case .text(let string): return string
        case .blob(let bytes): return bytes.map { String(format: "%02x", $0) }.joined()
        }
    }

    private static func table(_ view: ViewTable) -> String {
        let cells = view.rows.map { $0.map(text) }
        let widths = view.columns.indices.map { column in
            max(view.columns[column].count, cells.map { $0[column].count }.max() ?? 0)
        }
        func line(_ values: [String], numeric: [Bool]) -> String {
            values.indices.map { index in
                let padding = String(repeating: " ", count: widths[index] - values[index].count)
                return numeric[index] ? padding + values[index] : values[index] + padding
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) + "\n"
        }
        // Numbers (and exact decimals) align right, like a spreadsheet.
        let numeric = view.columns.indices.map { column in
            !view.rows.isEmpty && view.rows.allSatisfy { row in
                switch row[column] {
                case .integer, .real, .null: return true
                case .text(let string): return Double(string) != nil
                case .blob: return false
                }
            }
        }
        var output = line(view.columns, numeric: numeric)
        output += line(widths.map { String(repeating: "-", count: $0) }, numeric: numeric.map { _ in false })
        for row in cells { output += line(row, numeric: numeric) }
        if view.rows.isEmpty { output += "(no rows)\n" }
        return output
    }

    private static func csv(_ view: ViewTable) -> String {
        func field(_ text: String) -> String {
            text.contains(where: { [",", "\"", "\n", "\r"].contains($0) })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var output = view.columns.map(field).joined(separator: ",") + "\r\n"
        for row in view.rows { output += row.map { field(text($0)) }.joined(separator: ",") + "\r\n" }
        return output
    }

    private static func json(_ view: ViewTable) -> String {
        func literal(_ value: SQLValue) -> String {
            switch value {
            case .null: return "null"
            case .integer(let number): return String(number)
            case .real(let number): return number.isFinite ? String(format: "%.6g", number) : "null"
            case .text(let string): return quoted(string)
            case .blob(let bytes): return quoted(bytes.map { String(format: "%02x", $0) }.joined())
            }
        }
        func quoted(_ string: String) -> String {
            var output = "\""
            for scalar in string.unicodeScalars {
                switch scalar {
                case "\"": output += "\\\""
                case "\\": output += "\\\\"
                case "\n": output += "\\n"
                case "\r": output += "\\r"
                case "\t": output += "\\t"
                case _ where scalar.value < 0x20: output += String(format: "\\u%04x", scalar.value)
                default: output.unicodeScalars.append(scalar)
                }
            }
            return output + "\""
        }
        let rows = view.rows.map { row in
            "{" + zip(view.columns, row).map { quoted($0) + ":" + literal($1) }.joined(separator: ",") + "}"
        }
        return "[" + rows.joined(separator: ",\n ") + "]\n"
    }
}
