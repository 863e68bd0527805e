import XCTest
import SQLite
@testable import SyncEngine

/// Apply is idempotent, commutative and associative over random changesets.
final class MergeAlgebraTests: XCTestCase {
    private let seedCount = ProcessInfo.processInfo.environment["STORESYNC_SEEDS"].flatMap(Int.init) ?? 150

    /// Three replicas write concurrently from a shared base; returns their full changesets.
    private func randomChangesets(seed: UInt64) throws -> (base: Changeset, parts: [Changeset]) {
        var history = History(random: SplitMix64(seed: seed))
        let clock = ManualClock()
        let origin = try openMemoryReplica(clock: clock)
        for _ in 0..<15 { clock.advance(by: 1); try history.randomLocalWrite(on: origin) }
        let base = try origin.changes(since: 0)
        var parts: [Changeset] = []
        for _ in 0..<3 {
            let writerClock = ManualClock(clock.now + UInt64.random(in: 0..<50, using: &history.random))
            let writer = try openMemoryReplica(clock: writerClock)
            _ = try writer.apply(base)
            let mark = writer.latestSequence
            for _ in 0..<Int.random(in: 5...25, using: &history.random) {
                writerClock.advance(by: UInt64.random(in: 0...2, using: &history.random))
                try history.randomLocalWrite(on: writer)
            }
            // Sometimes only the tail since the base, sometimes everything: both are valid deltas.
            let since = Bool.random(using: &history.random) ? mark : 0
            parts.append(try writer.changes(since: since))
        }
        return (base, parts)
    }

    private func replica(after changesets: [Changeset]) throws -> Replica {
        let replica = try openMemoryReplica(clock: ManualClock(1_800_000_000_000))
        for changeset in changesets { _ = try replica.apply(changeset) }
        return replica
    }

    /// The join of two changesets, as a changeset: merge both into an empty replica and read it back.
    private func join(_ a: Changeset, _ b: Changeset) throws -> Changeset {
        try replica(after: [a, b]).changes(since: 0)
    }

    func testApplyIsIdempotent() throws {
        for seed in 0..<UInt64(seedCount) {
            let (base, parts) = try randomChangesets(seed: seed)
            let target = try replica(after: [base, parts[0]])
            let once = try target.canonicalDump(includeVersions: true)
            let sequence = target.latestSequence
            let second = try target.apply(parts[0])
            XCTAssertTrue(second.isNoOp, "re-applying changed rows (replay with seed \(seed))")
            XCTAssertEqual(target.latestSequence, sequence, "re-applying logged new changes (seed \(seed))")
            XCTAssertEqual(try target.canonicalDump(includeVersions: true), once, "seed \(seed)")
        }
    }

    func testApplyIsCommutative() throws {
        for seed in 0..<UInt64(seedCount) {
            let (base, parts) = try randomChangesets(seed: seed)
            let ab = try replica(after: [base, parts[0], parts[1]]).canonicalDump(includeVersions: true)
            let ba = try replica(after: [base, parts[1], parts[0]]).canonicalDump(includeVersions: true)
            XCTAssertEqual(ab, ba, "seed \(seed): \(firstDifference(ab, ba))")
            // Without the shared base first, too: a delta may arrive before what it builds on.
            let late = try replica(after: [parts[2], parts[0], base]).canonicalDump(includeVersions: true)
            let early = try replica(after: [base, parts[0], parts[2]]).canonicalDump(includeVersions: true)
            XCTAssertEqual(late, early, "seed \(seed): \(firstDifference(late, early))")
        }
    }

    func testApplyIsAssociative() throws {
        for seed in 0..<UInt64(seedCount) {
            let (base, parts) = try randomChangesets(seed: seed)
            let (a, b, c) = (parts[0], parts[1], parts[2])
            let left = try replica(after: [base, try join(a, b), c]).canonicalDump(includeVersions: true)
            let right = try replica(after: [base, a, try join(b, c)]).canonicalDump(includeVersions: true)
            XCTAssertEqual(left, right, "seed \(seed): \(firstDifference(left, right))")
        }
    }

    func testDumpIsByteIdenticalAcrossFilesAndMemory() throws {
        let (base, parts) = try randomChangesets(seed: 42)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let onDisk = try Replica(path: directory.appendingPathComponent("r.sqlite").path, schema: TestSchema.tables)
        for changeset in [base] + parts { _ = try onDisk.apply(changeset) }
        let inMemory = try replica(after: parts.reversed() + [base])
        XCTAssertEqual(try onDisk.canonicalDump(), try inMemory.canonicalDump())
        XCTAssertFalse(try onDisk.canonicalDump().isEmpty)
    }
}
