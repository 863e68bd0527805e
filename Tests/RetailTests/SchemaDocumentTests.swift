import Foundation
import Retail
import SyncEngine
import XCTest

/// Protocol/SCHEMA.md and `RetailSchemaRules` state the same schema: every table's kind, key
/// format, writers and column rows are parsed from the document and compared with what the code
/// enforces, so neither can change without the other.
final class SchemaDocumentTests: XCTestCase {
    /// One table as SCHEMA.md states it.
    private struct DocumentedTable: Equatable {
        var kind = ""
        var key = ""
        var writers = ""
        var rows: [[String]] = []
    }

    private static var documentURL: URL {
        // Tests/RetailTests/<this file> → the package root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocol/SCHEMA.md")
    }

    /// `### \`name\`` opens a table; `- kind:`, `- key:`, `- writers:` lines and the rows of its
    /// column table (after the header and separator) follow.
    private func parse(_ text: String) -> [String: DocumentedTable] {
        var tables: [String: DocumentedTable] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("### `"), line.hasSuffix("`") {
                current = String(line.dropFirst(5).dropLast())
                tables[current ?? ""] = DocumentedTable()
                continue
            }
            if line.hasPrefix("## ") { current = nil }
            guard let name = current else { continue }
            for (prefix, path) in [("- kind: ", \DocumentedTable.kind), ("- key: ", \.key), ("- writers: ", \.writers)] where line.hasPrefix(prefix) {
                tables[name]?[keyPath: path] = String(line.dropFirst(prefix.count))
            }
            if line.hasPrefix("|") {
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if cells.first == "column" || cells.first?.hasPrefix("-") == true { continue }
                tables[name]?.rows.append(cells)
            }
        }
        return tables
    }

    /// The table as the code states it, in the document's words.
    private func expected(_ rules: TableRules) -> DocumentedTable {
        DocumentedTable(
            kind: "`\(rules.schema.kind.rawValue)`", key: rules.key.specification,
            writers: rules.writers.map(\.rawValue).joined(separator: ", "),
            rows: rules.columns.map { column in
                ["`\(column.name.rawValue)`", column.rule.storageClasses.map(\.rawValue).joined(separator: " or "),
                 column.required ? "required" : "optional", column.rule.specification]
            })
    }

    private func markdown(_ name: String, _ table: DocumentedTable) -> String {
        (["### `\(name)`", "- kind: \(table.kind)", "- key: \(table.key)", "- writers: \(table.writers)", "",
          "| column | storage | required | rule |", "|---|---|---|---|"]
            + table.rows.map { "| " + $0.joined(separator: " | ") + " |" }).joined(separator: "\n")
    }

    func testSchemaDocumentMatchesTheRulesTheCodeEnforces() throws {
        let text = try String(contentsOf: Self.documentURL, encoding: .utf8)
        let documented = parse(text)
        XCTAssertEqual(Set(documented.keys), Set(RetailSchemaRules.all.map(\.name.rawValue)), "tables documented vs enforced")
        for rules in RetailSchemaRules.all {
            let name = rules.name.rawValue
            let want = expected(rules)
            XCTAssertEqual(documented[name], want, "SCHEMA.md's \(name) differs from RetailSchemaRules; the code says:\n\(markdown(name, want))")
        }
        // The error the refusals travel in, as the coordination fixed it.
        XCTAssertTrue(text.contains("| 41 | INVALID_VALUE |"), "SCHEMA.md names the refusal's code")
    }
}
