import Foundation
import SQLite
import XCTest

/// `storesync demo`, the README's first command, run as users run it.
final class DemoTests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-demo-test-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func query(_ path: URL, _ sql: String) throws -> [[SQLValue]] {
        var options = Database.Options()
        options.readOnly = true
        return try Database(path: path.path, options: options).fetchAll(sql)
    }

    /// The story without what differs from run to run (the directory, the elapsed time).
    private func story(_ output: String, directory: URL) -> String {
        output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("finished in ") }
            .joined(separator: "\n")
            .replacingOccurrences(of: directory.path, with: "DIR")
    }

    func testTheDemoTellsTheSameStoryForASeedAndLeavesQueryableReplicas() throws {
        let first = try temporaryDirectory()
        let second = try temporaryDirectory()
        let one = try StoresyncBinary.run(["demo", "--dir", first.path, "--seed", "11", "--days", "2"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try StoresyncBinary.run(["demo", "--dir", second.path, "--seed", "11", "--days", "2"])
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertEqual(story(one.stdout, directory: first), story(two.stdout, directory: second), "a seed replays the same story")
        for heading in ["HQ: sales by region", "HQ: lead funnel", "HQ: follow-up SLA by region", "HQ: stock below safety threshold", "central rules: promotion suggestions"] {
            XCTAssertTrue(one.stdout.contains(heading), "the demo prints \(heading)")
        }

        // HQ's consolidated sales equal what the terminals recorded, summed here from their own files.
        let terminals = try FileManager.default.contentsOfDirectory(atPath: first.path)
            .filter { $0.contains("-t") && $0.hasSuffix(".sqlite") }.map { first.appendingPathComponent($0) }
        XCTAssertEqual(terminals.count, 12)
        var sales: [String: (store: String, cents: Int64)] = [:]
        for terminal in terminals {
            for row in try query(terminal, "SELECT id, store, amount_cents FROM sales") {
                sales[row[0].textValue ?? ""] = (row[1].textValue ?? "", row[2].integerValue ?? 0)
            }
            // Scope isolation, in the terminal's own file: one store's leads and sales only.
            let stores = try query(terminal, "SELECT DISTINCT store FROM leads UNION SELECT DISTINCT store FROM sales")
            XCTAssertLessThanOrEqual(stores.count, 1, "\(terminal.lastPathComponent) holds rows of \(stores)")
        }
        let hq = first.appendingPathComponent("hq.sqlite")
        let byStore = try query(hq, "SELECT store, sum(amount_cents), count(*) FROM sales GROUP BY store ORDER BY store")
        var expected: [String: (cents: Int64, count: Int64)] = [:]
        for sale in sales.values {
            expected[sale.store, default: (0, 0)].cents += sale.cents
            expected[sale.store, default: (0, 0)].count += 1
        }
        XCTAssertEqual(byStore.count, expected.count)
        for row in byStore {
            let store = row[0].textValue ?? ""
            XCTAssertEqual(row[1].integerValue, expected[store]?.cents, store)
            XCTAssertEqual(row[2].integerValue, expected[store]?.count, store)
        }
        XCTAssertEqual(try query(hq, "PRAGMA integrity_check").first?.first?.textValue, "ok")
    }

    func testADirectoryThatHoldsADemoIsRefused() throws {
        let directory = try temporaryDirectory()
        XCTAssertEqual(try StoresyncBinary.run(["demo", "--dir", directory.path, "--days", "1"]).status, 0)
        let again = try StoresyncBinary.run(["demo", "--dir", directory.path, "--days", "1"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already holds a demo"), again.stderr)
    }
}
