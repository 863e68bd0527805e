import Foundation
import XCTest

/// The bounded mode of the fault-injection harness (`Tools/storesync-chaos`, RELIABILITY.md):
/// fixed seeds, each a whole topology of real `storesync` processes behind the harness's
/// proxies, faults, a heal and the checks on the SQLite files. And the checker's own test:
/// files damaged on purpose must fail with the invariant named.
final class ChaosTests: CLITestCase {
    /// The seeds CI runs; a failure prints the seed and its history (replay with
    /// `swift run storesync-chaos --seeds N..N --verbose`).
    static let seeds = "1..2"

    /// Without restore faults: 2 of 18 restore schedules (seeds 11 and 17) do not converge (a
    /// hub's own post-backup write that reached its terminals is undone by the restore; nothing
    /// acknowledged is lost, RELIABILITY.md's open finding), so they would make CI fail at random
    /// until that is fixed. Restores have deterministic tests of their own (RestoreTests).
    func testBoundedSchedulesKeepEveryAcknowledgedWrite() throws {
        let outcome = try chaos(["--seeds", ChaosTests.seeds, "--ops", "150"])
        XCTAssertEqual(outcome.status, 0, "storesync-chaos failed:\n\(outcome.stdout)\n\(outcome.stderr)")
        XCTAssertTrue(outcome.stdout.contains("2 schedules, 0 failed"), outcome.stdout)
    }

    func testCheckerReportsALostRow() throws {
        let outcome = try chaos(["--seeds", "7..7", "--ops", "60", "--tamper", "drop-row"])
        XCTAssertEqual(outcome.status, 1, outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("[lost] acknowledged visits row"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("[convergence]"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("replay: storesync-chaos --seeds 7..7"), outcome.stdout)
    }

    func testCheckerReportsADoubledSale() throws {
        let outcome = try chaos(["--seeds", "8..8", "--ops", "60", "--tamper", "duplicate-sale"])
        XCTAssertEqual(outcome.status, 1, outcome.stdout)
        // Only HQ holds the copy; whether it also exceeds the attempted lines depends on the
        // writes killed mid-way (unknown outcome), so the convergence check is the one asserted.
        XCTAssertTrue(outcome.stdout.contains("[convergence] store"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("-copy|"), outcome.stdout)
    }

    /// Runs the harness beside the built `storesync`, output through files; the deadline is
    /// only reached by a harness that hangs.
    private func chaos(_ arguments: [String]) throws -> StoresyncBinary.Outcome {
        let storesync = try StoresyncBinary.url()
        let executable = storesync.deletingLastPathComponent().appendingPathComponent("storesync-chaos")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            XCTFail("storesync-chaos not built at \(executable.path) (`swift build --build-tests` builds it)")
            throw HubProcessError("storesync-chaos missing")
        }
        let stdoutURL = directory.appendingPathComponent("chaos.stdout")
        let stderrURL = directory.appendingPathComponent("chaos.stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments + ["--storesync", storesync.path, "--dir", path("runs")]
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        if exited.wait(timeout: .now() + 900) == .timedOut {
            process.interrupt()
            kill(process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + 30)
            XCTFail("storesync-chaos did not finish within 15 minutes: \((try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "")")
        }
        return StoresyncBinary.Outcome(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        )
    }
}
