import Foundation
import SQLite
import XCTest
@testable import SyncEngine

/// Kills a writer process (Tools/storesync-crash-writer) with SIGKILL at arbitrary points and
/// checks, after every kill, that the replica file holds every batch the writer reported as
/// committed, in its tables and in its change log, and no part of any other batch.
///
/// Replay a failure with `STORESYNC_CRASH_SEED=<seed> swift test --filter CrashSafetyTests`.
final class CrashSafetyTests: XCTestCase {
    private static let rounds = 12
    private static let maxCommitsPerRound = 200
    private static let roundTimeout: Duration = .seconds(20)

    func testKilledWriterLosesNoCommittedBatchAndLeavesNoPartialOne() throws {
        let seed = ProcessInfo.processInfo.environment["STORESYNC_CRASH_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: .min ... .max)
        var generator = SplitMix64(seed: seed)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("replica.sqlite").path
        let writer = try writerExecutable()

        var reported: [Int64: String] = [:]
        var lastInFile: Int64 = 0
        for round in 1...Self.rounds {
            let context = "seed \(seed), round \(round)"
            // Now and then kill at once, while the writer is still opening (and recovering) the file.
            let commits = generator.next() % 6 == 0 ? 0 : Int.random(in: 1...Self.maxCommitsPerRound, using: &generator)
            let lines = try runWriterUntilKilled(
                writer, path: path, seed: generator.next(), afterCommits: commits,
                stderrPath: directory.appendingPathComponent("stderr-\(round).txt").path, context: context)
            // The writer continues after the last batch in the file, which it may not have reported.
            var lastReported = lastInFile
            for line in lines {
                let fields = line.split(separator: " ")
                guard fields.count == 3, fields[0] == "committed", let batch = Int64(fields[1]) else {
                    XCTFail("unexpected line from the writer: \(line) (\(context))")
                    continue
                }
                XCTAssertEqual(batch, lastReported + 1, "batches are reported in order (\(context))")
                lastReported = batch
                reported[batch] = String(fields[2])
            }
            XCTAssertGreaterThanOrEqual(lines.count, commits, "\(context)")
            lastInFile = try verifyReplica(at: path, reported: reported, lastReported: lastReported, context: context)
        }
    }

    // MARK: The writer process

    /// The writer binary, built by SwiftPM into the directory of the test bundle (the test target
    /// depends on it). On Linux the bundle URL is that directory; on macOS it is the `.xctest` in it.
    private func writerExecutable() throws -> URL {
        let bundle = Bundle(for: Self.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("storesync-crash-writer") }
        return try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                             "storesync-crash-writer not found at \(candidates.map(\.path))")
    }

    /// Starts the writer, waits until it has reported `afterCommits` commits, kills it with
    /// SIGKILL and returns every line it printed (including any after the target).
    private func runWriterUntilKilled(
        _ executable: URL, path: String, seed: UInt64, afterCommits: Int, stderrPath: String, context: String
    ) throws -> [String] {
        let process = Process()
        process.executableURL = executable
        process.arguments = ["--db", path, "--seed", String(seed)]
        let output = Pipe()
        process.standardOutput = output
        XCTAssertTrue(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let errorFile = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        defer { try? errorFile.close() }
        process.standardError = errorFile
        process.standardInput = FileHandle.nullDevice

        let lines = LineCollector()
        try process.run()
        let descriptor = output.fileHandleForReading.fileDescriptor
        let reader = Thread { lines.readUntilEndOfFile(descriptor) }
        reader.start()

        let reached = lines.wait(forLines: afterCommits, until: .now + Self.roundTimeout)
        // Kill whether or not the target was reached, so the child is always reaped.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        let drained = lines.waitForEndOfFile(until: .now + Self.roundTimeout)
        process.waitUntilExit()
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""

        XCTAssertTrue(reached, "writer reported \(lines.snapshot().count) of \(afterCommits) commits; stderr: \(stderr) (\(context))")
        XCTAssertTrue(drained, "writer's stdout never closed (\(context))")
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "writer exited by itself; stderr: \(stderr) (\(context))")
        XCTAssertEqual(process.terminationStatus, SIGKILL, "\(context)")
        return lines.snapshot()
    }

    // MARK: Checks

    private struct Visit {
        var key: String
        var lead: String
        var index: Int64
        var outcome: String
    }

    /// Checks the file after a kill and returns the last batch it holds.
    private func verifyReplica(at path: String, reported: [Int64: String], lastReported: Int64, context: String) throws -> Int64 {
        let replica = try Replica(path: path, schema: TestSchema.tables)
        XCTAssertEqual(try replica.read { try $0.integrityCheck() }, "ok", context)

        // The user tables.
        let (visitRows, leadRows, sequences) = try replica.read { database in
            (try database.fetchAll("SELECT id, lead, at_ms, duration_min, outcome FROM visits"),
             try database.fetchAll("SELECT id, score, stage FROM leads"),
             try database.fetchAll("SELECT seq FROM sync_lww_leads UNION ALL SELECT seq FROM sync_log_visits"))
        }
        var visitsByBatch: [Int64: [Visit]] = [:]
        for row in visitRows {
            let batch = try XCTUnwrap(row[2].integerValue, context)
            visitsByBatch[batch, default: []].append(Visit(
                key: try XCTUnwrap(row[0].textValue, context), lead: try XCTUnwrap(row[1].textValue, context),
                index: try XCTUnwrap(row[3].integerValue, context), outcome: try XCTUnwrap(row[4].textValue, context)))
        }
        var liveLeads: [String: (batch: Int64, stage: String)] = [:]
        for row in leadRows {
            liveLeads[try XCTUnwrap(row[0].textValue, context)] = (try XCTUnwrap(row[1].integerValue, context), try XCTUnwrap(row[2].textValue, context))
        }

        // Batches 1...last are all there: every reported one, and at most one more (committed
        // by the writer but killed before it printed).
        let lastBatch = visitsByBatch.keys.max() ?? 0
        assertSame(Set(visitsByBatch.keys), Set(lastBatch > 0 ? Array(1...lastBatch) : []), "batches 1...\(lastBatch)", context)
        XCTAssertTrue(lastBatch == lastReported || lastBatch == lastReported + 1,
                      "file holds batches up to \(lastBatch), writer reported up to \(lastReported) (\(context))")

        // Each batch is whole: one lead and exactly three visits of it, and what it did to other leads.
        var leadOfBatch: [Int64: String] = [:]
        var deletedBy: [String: Int64] = [:]
        var lastUpdateOf: [String: Int64] = [:]
        for (batch, visits) in visitsByBatch {
            XCTAssertEqual(visits.count, 3, "batch \(batch) has \(visits.count) visits (\(context))")
            XCTAssertEqual(visits.map(\.index).sorted(), [0, 1, 2], "batch \(batch) (\(context))")
            XCTAssertEqual(Set(visits.map(\.lead)).count, 1, "batch \(batch) visits name several leads (\(context))")
            let lead = try XCTUnwrap(visits.first?.lead, context)
            leadOfBatch[batch] = lead
            for visit in visits {
                if visit.outcome.hasPrefix("deleted:") {
                    let target = String(visit.outcome.dropFirst("deleted:".count))
                    XCTAssertNil(deletedBy[target], "\(target) deleted twice (\(context))")
                    deletedBy[target] = batch
                } else if visit.outcome.hasPrefix("updated:") {
                    let target = String(visit.outcome.dropFirst("updated:".count))
                    lastUpdateOf[target] = max(lastUpdateOf[target] ?? 0, batch)
                }
            }
        }
        for (batch, key) in reported {
            XCTAssertEqual(leadOfBatch[batch], key, "reported batch \(batch) is missing or has another lead (\(context))")
        }
        XCTAssertEqual(Set(leadOfBatch.values).count, leadOfBatch.count, "a lead key belongs to two batches (\(context))")

        // Every batch's lead is live, unless a later batch recorded deleting it; updates are exact.
        let batchOfLead = Dictionary(uniqueKeysWithValues: leadOfBatch.map { ($1, $0) })
        for (key, deletingBatch) in deletedBy {
            let batch = try XCTUnwrap(batchOfLead[key], "deleted lead \(key) belongs to no batch (\(context))")
            XCTAssertGreaterThan(deletingBatch, batch, context)
            XCTAssertNil(liveLeads[key], "lead \(key) deleted by batch \(deletingBatch) is still there (\(context))")
        }
        assertSame(Set(liveLeads.keys), Set(batchOfLead.keys).subtracting(deletedBy.keys), "live leads", context)
        for (key, lead) in liveLeads {
            XCTAssertEqual(lead.batch, batchOfLead[key], "score of \(key) (\(context))")
            let expectedStage = lastUpdateOf[key].map { "updated-by-\($0)" } ?? "new"
            XCTAssertEqual(lead.stage, expectedStage, "stage of \(key) (\(context))")
        }

        // The change log holds every row the tables hold, deletions as tombstones, each once.
        let changeset = try replica.changes(since: 0)
        let leadChanges = changeset.tables.first { $0.table == TestSchema.leads }?.rows ?? []
        let visitChanges = changeset.tables.first { $0.table == TestSchema.visits }?.rows ?? []
        XCTAssertEqual(leadChanges.count, Set(leadChanges.map(\.primaryKey)).count, "a lead appears twice in the change log (\(context))")
        assertSame(Set(leadChanges.map(\.primaryKey)), Set(batchOfLead.keys), "leads in the change log", context)
        assertSame(Set(leadChanges.filter(\.isDeleted).map(\.primaryKey)), Set(deletedBy.keys), "tombstones in the change log", context)
        XCTAssertEqual(visitChanges.count, Set(visitChanges.map(\.primaryKey)).count, "a visit appears twice in the change log (\(context))")
        assertSame(Set(visitChanges.map(\.primaryKey)), Set(visitsByBatch.values.joined().map(\.key)), "visits in the change log", context)

        // Local sequences are unique, and the counter resumes above all of them.
        let numbers = sequences.compactMap { $0.first?.integerValue }
        XCTAssertEqual(numbers.count, sequences.count, context)
        XCTAssertEqual(Set(numbers).count, numbers.count, "a sequence number is used twice (\(context))")
        XCTAssertEqual(UInt64(numbers.max() ?? 0), replica.latestSequence, context)
        XCTAssertEqual(changeset.toSequence, replica.latestSequence, context)
        return lastBatch
    }
}

/// Compares two sets and reports only their differences (the sets themselves can be large).
private func assertSame<T: Hashable & Comparable>(
    _ actual: Set<T>, _ expected: Set<T>, _ what: String, _ context: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual != expected else { return }
    let missing = expected.subtracting(actual).sorted().prefix(5)
    let extra = actual.subtracting(expected).sorted().prefix(5)
    XCTFail("\(what): \(actual.count) instead of \(expected.count); missing \(Array(missing)), unexpected \(Array(extra)) (\(context))",
            file: file, line: line)
}

/// Collects a child's stdout lines on a reader thread; the test waits on it with deadlines.
private final class LineCollector: @unchecked Sendable {
    // Every stored property but `condition` is read and written only with `condition` locked.
    private let condition = NSCondition()
    private var lines: [String] = []
    private var partial: [UInt8] = []
    private var finished = false

    /// Runs on the reader thread until the child's stdout closes.
    func readUntilEndOfFile(_ descriptor: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            self.append(buffer[0..<count])
        }
        self.locked {
            if !self.partial.isEmpty { self.lines.append(String(decoding: self.partial, as: UTF8.self)) }
            self.partial = []
            self.finished = true
        }
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        self.locked {
            for byte in bytes {
                if byte == UInt8(ascii: "\n") {
                    self.lines.append(String(decoding: self.partial, as: UTF8.self))
                    self.partial.removeAll(keepingCapacity: true)
                } else {
                    self.partial.append(byte)
                }
            }
        }
    }

    /// True once `count` lines arrived; false if the output ended first or at the deadline.
    func wait(forLines count: Int, until deadline: ContinuousClock.Instant) -> Bool {
        self.wait(until: deadline) { $0.lines.count >= count || $0.finished } && self.snapshot().count >= count
    }

    func waitForEndOfFile(until deadline: ContinuousClock.Instant) -> Bool {
        self.wait(until: deadline) { $0.finished }
    }

    func snapshot() -> [String] {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.lines
    }

    /// Changes the state under the lock and wakes every waiter.
    private func locked(_ body: () -> Void) {
        self.condition.lock()
        defer { self.condition.unlock() }
        body()
        self.condition.broadcast()
    }

    private func wait(until deadline: ContinuousClock.Instant, _ done: (LineCollector) -> Bool) -> Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        while !done(self) {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return false }
            let seconds = Double(remaining.components.seconds) + Double(remaining.components.attoseconds) * 1e-18
            _ = self.condition.wait(until: Date(timeIntervalSinceNow: seconds))
        }
        return true
    }
}
