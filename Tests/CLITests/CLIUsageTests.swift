import Foundation
import XCTest

/// The storesync binary's command line is a public interface: scripts rely on its exit codes.
final class CLIUsageTests: XCTestCase {
    func testHelpSucceedsAndUnknownCommandIsAUsageError() throws {
        let help = try StoresyncBinary.run(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("usage: storesync"), help.stdout)

        let unknown = try StoresyncBinary.run(["no-such-command"])
        XCTAssertEqual(unknown.status, 64)
        XCTAssertTrue(unknown.stderr.contains("unknown command no-such-command"), unknown.stderr)
    }
}
