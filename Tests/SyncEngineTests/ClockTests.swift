import XCTest
import SQLite
@testable import SyncEngine

final class ClockTests: XCTestCase {
    func testNowIsMonotonicWhenTheWallClockStepsBack() {
        let wall = ManualClock(10_000)
        let clock = HybridLogicalClock(wallClock: wall.wallClock)
        var previous = clock.now()
        var random = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            // Jumps back up to a minute, forward up to a second, or stands still.
            switch Int.random(in: 0..<3, using: &random) {
            case 0: wall.set(wall.now - min(wall.now, UInt64.random(in: 0...60_000, using: &random)))
            case 1: wall.advance(by: UInt64.random(in: 0...1_000, using: &random))
            default: break
            }
            let next = clock.now()
            XCTAssertGreaterThan(next, previous)
            previous = next
        }
    }

    func testCounterOverflowBorrowsTheNextMillisecond() {
        let clock = HybridLogicalClock(wallClock: { 5_000 })
        var last = clock.now()
        for _ in 0..<70_000 {
            let next = clock.now()
            XCTAssertGreaterThan(next, last)
            last = next
        }
        XCTAssertEqual(last.milliseconds, 5_001)
    }

    func testObservingARemoteReadingOrdersLaterWritesAfterIt() throws {
        let clock = HybridLogicalClock(wallClock: { 1_000_000 })
        let remote = HLCTimestamp(milliseconds: 1_000_000 + 60_000, counter: 9)
        try clock.observe(remote)
        XCTAssertGreaterThan(clock.now(), remote)
    }

    func testAReadingBeyondTheDriftBoundIsRefusedAndDoesNotMoveTheClock() {
        let clock = HybridLogicalClock(wallClock: { 1_000_000 }, maxForwardDriftMilliseconds: 1_000)
        let before = clock.last
        XCTAssertThrowsError(try clock.observe(HLCTimestamp(milliseconds: 1_002_000, counter: 0))) { error in
            XCTAssertEqual(error as? SyncError, .clockSkew(remoteMilliseconds: 1_002_000, localMilliseconds: 1_000_000))
        }
        XCTAssertEqual(clock.last, before)
    }

    /// A terminal whose clock runs a year ahead: the hub refuses its batch (nothing applied,
    /// nothing lost), the terminal adopts the hub's time and re-stamps, the batch is accepted,
    /// and the next honest write elsewhere wins instead of losing to the bad clock forever.
    func testADeviceWithAFutureClockCannotWinEveryLaterConflict() throws {
        let hubClock = ManualClock(1_700_000_000_000)
        let skewedClock = ManualClock(1_700_000_000_000 + 365 * 24 * 3_600_000)
        let hub = try openMemoryReplica(clock: hubClock)
        let terminal = try openMemoryReplica(clock: skewedClock)
        let leads = TestSchema.leads, name = TestSchema.column("name")

        try terminal.write { try $0.insert(into: leads, primaryKey: "L1", [name: .text("from the future")]) }
        try terminal.write { tx in try tx.insert(into: TestSchema.visits, primaryKey: "V1", [TestSchema.column("store"): .text("S1")]) }
        XCTAssertThrowsError(try hub.apply(try terminal.changes(since: 0))) { error in
            guard case .clockSkew? = error as? SyncError else { return XCTFail("expected clock skew, got \(error)") }
        }
        XCTAssertEqual(try hub.canonicalDump(), "", "a refused batch applies nothing")

        XCTAssertEqual(try terminal.rebaseClock(referenceMilliseconds: hubClock.now), 2)
        let accepted = try hub.apply(try terminal.changes(since: 0))
        XCTAssertEqual(accepted.rowsInserted, 2, "the terminal's writes are kept, not lost")

        hubClock.advance(by: 1_000)
        try hub.write { try $0.update(leads, primaryKey: "L1", set: [name: .text("honest later edit")]) }
        _ = try terminal.apply(try hub.changes(since: 0))
        let name1 = try terminal.read { try $0.fetchScalar("SELECT name FROM leads WHERE id = 'L1'") }
        XCTAssertEqual(name1, .text("honest later edit"))
        XCTAssertEqual(try terminal.canonicalDump(includeVersions: true), try hub.canonicalDump(includeVersions: true))

        // The correction persists: reopened replicas keep the offset (checked through the setting).
        XCTAssertNotNil(try terminal.setting("clock_offset_ms")?.integerValue)
    }

    /// A device whose clock lags: its writes merge and order as old ones; the hub's newer changes
    /// look like skew to it until it adopts the hub's time, after which they merge too.
    func testADeviceWithALaggingClockLosesNothing() throws {
        let hubClock = ManualClock(1_700_000_000_000)
        let laggingClock = ManualClock(1_600_000_000_000)
        let hub = try openMemoryReplica(clock: hubClock)
        let terminal = try openMemoryReplica(clock: laggingClock)
        try terminal.write { try $0.insert(into: TestSchema.leads, primaryKey: "L9", [TestSchema.column("name"): .text("old clock")]) }
        XCTAssertEqual(try hub.apply(try terminal.changes(since: 0)).rowsInserted, 1)
        // Having seen the hub's changes, the lagging terminal's next write orders after them.
        try hub.write { try $0.update(TestSchema.leads, primaryKey: "L9", set: [TestSchema.column("name"): .text("hub")]) }
        XCTAssertThrowsError(try terminal.apply(try hub.changes(since: 0)))
        XCTAssertEqual(try terminal.rebaseClock(referenceMilliseconds: hubClock.now), 0, "nothing of ours is in the future")
        _ = try terminal.apply(try hub.changes(since: 0))
        try terminal.write { try $0.update(TestSchema.leads, primaryKey: "L9", set: [TestSchema.column("name"): .text("terminal after hub")]) }
        _ = try hub.apply(try terminal.changes(since: 0))
        XCTAssertEqual(try hub.read { try $0.fetchScalar("SELECT name FROM leads") }, .text("terminal after hub"))
    }

    func testReplicaIDRoundTripsThroughBytesAndHex() throws {
        let id = ReplicaID.random()
        XCTAssertEqual(try ReplicaID(bytes: id.bytes), id)
        XCTAssertEqual(ReplicaID(hex: id.description), id)
        XCTAssertNil(ReplicaID(hex: "zz"))
        XCTAssertThrowsError(try ReplicaID(bytes: [1, 2, 3]))
    }

    func testUniqueIDsAreTimeOrderedAndDistinct() {
        let early = UniqueID.make(milliseconds: 1_000)
        let late = UniqueID.make(milliseconds: 2_000)
        XCTAssertEqual(early.count, 26)
        XCTAssertLessThan(early, late)
        XCTAssertEqual(Set((0..<1_000).map { _ in UniqueID.make(milliseconds: 5) }).count, 1_000)
    }
}
