import Foundation
import SQLite
import Synchronization
import XCTest
@testable import SyncEngine

/// A wall clock that tests move by hand.
final class ManualClock: Sendable {
    private let milliseconds: Mutex<UInt64>
    init(_ start: UInt64 = 1_700_000_000_000) { milliseconds = Mutex(start) }
    func advance(by delta: UInt64) { milliseconds.withLock { $0 += delta } }
    func set(_ value: UInt64) { milliseconds.withLock { $0 = value } }
    var now: UInt64 { milliseconds.withLock { $0 } }
    var wallClock: WallClock { { [self] in self.now } }
}

enum TestSchema {
    static let leads = try! TableName("leads")
    static let visits = try! TableName("visits")
    static let leadColumns = ["name", "phone", "store", "owner", "source", "score", "stage", "due_ms"]

    /// An 8-column last-writer-wins table and an insert-only table, shaped like the retail ones.
    static let tables: [TableSchema] = [
        try! TableSchema("leads", kind: .lastWriterWins, columns: [
            ("name", .text), ("phone", .text), ("store", .text), ("owner", .text),
            ("source", .text), ("score", .integer), ("stage", .text), ("due_ms", .integer),
        ], indexes: [["store"]]),
        try! TableSchema("visits", kind: .insertOnly, columns: [
            ("lead", .text), ("store", .text), ("guide", .text), ("at_ms", .integer),
            ("duration_min", .integer), ("products", .text), ("outcome", .text), ("rating", .real),
        ]),
    ]

    static func column(_ name: String) -> ColumnName { try! ColumnName(name) }
}

func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func openMemoryReplica(clock: ManualClock = ManualClock(), drift: UInt64 = 5 * 60 * 1000) throws -> Replica {
    var options = ReplicaOptions()
    options.wallClock = clock.wallClock
    options.maxForwardDriftMilliseconds = drift
    return try Replica(path: ":memory:", schema: TestSchema.tables, options: options)
}

/// The helper binary Tools/storesync-crash-writer, built by SwiftPM beside the test bundle.
func crashWriterExecutable(for testCase: XCTestCase) throws -> URL {
    let bundle = Bundle(for: type(of: testCase)).bundleURL
    let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("storesync-crash-writer") }
    return try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                         "storesync-crash-writer not found at \(candidates.map(\.path))")
}

/// A child process whose stdout and stderr go to files (nothing to drain while it runs).
struct ChildRun {
    let process: Process
    let stdoutPath: String
    let stderrPath: String

    static func start(_ executable: URL, _ arguments: [String], in directory: URL, name: String) throws -> ChildRun {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let stdoutPath = directory.appendingPathComponent("\(name).out").path
        let stderrPath = directory.appendingPathComponent("\(name).err").path
        XCTAssertTrue(FileManager.default.createFile(atPath: stdoutPath, contents: nil))
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return ChildRun(process: process, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// Waits for the exit and returns (status, stdout, stderr).
    func finish() -> (status: Int32, stdout: String, stderr: String) {
        process.waitUntilExit()
        let out = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, out, err)
    }
}
