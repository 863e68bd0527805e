import Foundation
import Hub
import Logging
import Net
import SyncEngine
import Terminal
import Wire
import XCTest

/// Rows big enough that a batch of the usual cell budget does not fit in one frame: "a sender
/// that would exceed the cap MUST split its data instead" (PROTOCOL.md §2), both ways.
final class FrameCapTests: XCTestCase {
    func testBatchesAreSplitToFitTheFrameCapBothWays() throws {
        let fixture = try HubFixture { $0.maxFrameBytes = 64 * 1024 }  // 4,000 cells a batch, but 64 KiB a frame
        let a = try fixture.makeTerminal("a"), b = try fixture.makeTerminal("b")
        let note = String(repeating: "x", count: 2_000)
        try a.write { tx in
            for index in 0..<200 {  // 200 rows of 2 KB: 400 KB, a few cells each
                try tx.insert(into: HubTestSchema.leads, primaryKey: "BIG\(index)",
                              [HubTestSchema.column("name"): .text(note), HubTestSchema.column("stage"): .text("reached")])
            }
        }
        let pushed = try fixture.sync(a)
        XCTAssertEqual(pushed.pushedRows, 200)
        XCTAssertGreaterThan(pushed.pushedBatches, 6, "400 KB cannot go in fewer than 7 frames of 64 KiB")
        // The hub keeps to its own cap when it answers, too (the protocol's is 16 MiB that way).
        let pulled = try fixture.sync(b)
        XCTAssertEqual(pulled.pulledRows, 200)
        XCTAssertGreaterThan(pulled.pulledBatches, 6)
        XCTAssertEqual(try b.canonicalDump(includeVersions: true), try fixture.hubReplica.canonicalDump(includeVersions: true))
    }
}
