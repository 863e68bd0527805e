import Foundation
import SQLite
import XCTest

/// What every test of the built binary needs: a scratch directory of its own, the binary run
/// with an expected exit status, read-only queries of replica files that another process may be
/// writing, and waiting on a condition with a deadline.
class CLITestCase: XCTestCase {
    private(set) var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Runs `storesync ARGUMENTS`; a status other than `status` fails the test and throws, so a
    /// setup step that failed stops the test where it failed.
    @discardableResult
    func storesync(_ arguments: [String], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line)
        throws -> StoresyncBinary.Outcome {
        let outcome = try StoresyncBinary.run(arguments)
        guard outcome.status == status else {
            XCTFail("storesync \(arguments.joined(separator: " ")) exited \(outcome.status), not \(status): \(outcome.stdout) \(outcome.stderr)",
                    file: file, line: line)
            throw HubProcessError("storesync \(arguments.first ?? "") exited \(outcome.status)")
        }
        return outcome
    }

    func readOnly(_ file: String) throws -> Database {
        var options = Database.Options()
        options.readOnly = true
        return try Database(path: path(file), options: options)
    }

    func query(_ file: String, _ sql: String, _ values: [SQLValue] = []) throws -> [[SQLValue]] {
        try readOnly(file).fetchAll(sql, values)
    }

    /// Polls `condition` until it holds; throws after `timeout` seconds (only a failure waits that long).
    func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(10_000)
        }
        throw HubProcessError("timed out waiting until \(what)")
    }
}
