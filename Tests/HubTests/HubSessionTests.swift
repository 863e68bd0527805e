import Foundation
import Hub
import Logging
import Net
import SyncEngine
import Terminal
import Wire
import XCTest

/// The hub's session state machine seen from a fast, exact client on a raw socket.
final class HubSessionTests: XCTestCase {
    /// A client may send its next PULL the instant it has a PULL_BATCH (PROTOCOL.md §5.4): the
    /// hub must already count the previous pull as answered. (It used to clear its "outstanding"
    /// mark only after sending, so a quick client was refused with UNEXPECTED_MESSAGE.)
    func testAPullSentTheMomentABatchArrivesIsAccepted() throws {
        let fixture = try HubFixture { $0.maxBatchCells = 4 }  // one row of 4 cells per batch
        let writer = try fixture.makeTerminal("writer")
        try writer.write { tx in
            for index in 0..<200 {
                try tx.insert(into: HubTestSchema.visits, primaryKey: UniqueID.make(),
                              [HubTestSchema.column("store"): .text("S1"), HubTestSchema.column("duration_min"): .integer(Int64(index))])
            }
        }
        _ = try fixture.sync(writer)

        let client = try RawClient(port: fixture.address.port)
        try client.send(BadClient.hello())
        guard case .helloAck? = try client.receive() else { return XCTFail("no HELLO_ACK") }
        var cursor: UInt64 = 0
        var rows = 0
        var batches = 0
        while true {
            try client.send(.pull(Pull(fromSequence: cursor, maxCells: 0, live: false)))
            guard let answer = try client.receive() else { return XCTFail("no answer to PULL \(batches + 1)") }
            guard case .pullBatch(let batch) = answer else {
                return XCTFail("PULL \(batches + 1) from \(cursor) was answered with \(answer)")
            }
            batches += 1
            rows += batch.changeset.rowCount
            cursor = batch.changeset.toSequence
            if !batch.more { break }
        }
        XCTAssertEqual(rows, 200)
        XCTAssertGreaterThanOrEqual(batches, 200)
    }
}
