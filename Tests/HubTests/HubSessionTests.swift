import Foundation
import Hub
import Logging
import Net
import SyncEngine
import Synchronization
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

/// A terminal facing a hub that breaks the protocol fails its sync; it never loops or hangs.
final class MisbehavingHubTests: XCTestCase {
    /// A fake hub on 127.0.0.1:0: answers HELLO, then every PULL with what `answer` returns.
    private func fakeHub(answer: @escaping @Sendable (Pull) -> PullBatch) throws -> Listener {
        let hubID = ReplicaID.random()
        let listener = try Listener(address: SocketAddress(host: "127.0.0.1", port: 0), limits: ConnectionLimits(),
                                    logger: Logger.discarding)
        listener.start { connection in
            connection.start(onMessage: { message in
                switch message {
                case .hello:
                    connection.send(.helloAck(HelloAck(
                        protocolVersion: 1, replica: hubID, clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0),
                        pushCursor: 0, latestSequence: 100,
                        limits: SessionLimits(maxFrameBytes: 1 << 20, maxBatchCells: 100, idleTimeoutMilliseconds: 60_000))))
                case .pull(let pull):
                    var batch = answer(pull)
                    batch.changeset.source = hubID
                    connection.send(.pullBatch(batch))
                default:
                    break
                }
            }, onClose: { _ in })
        }
        return listener
    }

    private func syncFails(against listener: Listener, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-fake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let terminal = try Replica(path: directory.appendingPathComponent("t.sqlite").path, schema: HubTestSchema.tables)
        let options = {
            var options = SyncOptions(hub: listener.boundAddress, scope: "store:S1")
            options.replyTimeout = .seconds(30)
            return options
        }()
        // On its own thread with a deadline: a terminal that loops would fail here, not hang the suite.
        let outcome = Mutex<Result<SyncReport, SyncFailure>?>(nil)
        let sync = BackgroundTask("fake-hub-sync") {
            let result = Result { () throws(SyncFailure) -> SyncReport in
                try SyncClient(replica: terminal, options: options, logger: Logger.discarding).syncOnce()
            }
            outcome.withLock { $0 = result }
        }
        try sync.join(timeout: .seconds(30), file: file, line: line)
        switch outcome.withLock({ $0 }) {
        case .failure(let failure)?:
            XCTAssertEqual(failure.kind, .protocolViolation, "\(failure)", file: file, line: line)
            XCTAssertTrue(failure.message.contains(expected), failure.message, file: file, line: line)
        case .success?:
            XCTFail("a sync against a broken hub succeeded", file: file, line: line)
        case nil:
            break  // join already failed
        }
    }

    func testABatchThatSkipsPastTheCursorFailsTheSync() throws {
        let listener = try fakeHub { pull in
            PullBatch(more: true, changeset: Changeset(source: .none, fromSequence: pull.fromSequence + 5,
                                                       toSequence: pull.fromSequence + 10, tables: []))
        }
        defer { listener.close() }
        try syncFails(against: listener, "does not continue the pull from 0")
    }

    func testABatchThatPromisesMoreButMovesNothingFailsTheSync() throws {
        let listener = try fakeHub { pull in
            PullBatch(more: true, changeset: Changeset(source: .none, fromSequence: pull.fromSequence,
                                                       toSequence: pull.fromSequence, tables: []))
        }
        defer { listener.close() }
        try syncFails(against: listener, "does not continue the pull from 0")
    }
}
