import Foundation
import Hub
import Logging
import Net
import SyncEngine
import Terminal
import Wire
import XCTest

/// NOTIFY goes to the live sessions whose scope holds the commit (PROTOCOL.md §5.4): with a
/// thousand terminals live, a store's write must not send every one of them pulling.
final class LiveNotifyScopeTests: XCTestCase {
    private struct Unexpected: Error, CustomStringConvertible {
        var description: String
    }

    /// A raw live session of `store`, caught up on an empty hub.
    private func liveSession(_ fixture: HubFixture, store: String) throws -> BlockingFramedClient {
        let client = try BlockingFramedClient(connectingTo: fixture.address, timeout: .seconds(5), logger: fixture.logger)
        try client.send(.hello(Hello(protocolVersions: WireFormat.supportedProtocolVersions, replica: ReplicaID.random(),
                                     role: .terminal, scope: "store:\(store)", clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0),
                                     credentials: [])))
        guard case .helloAck = try client.receive(timeout: .seconds(10)) else { throw Unexpected(description: "no HELLO_ACK") }
        try client.send(.pull(Pull(fromSequence: 0, maxCells: 0, live: true)))
        guard case .pullBatch(let batch) = try client.receive(timeout: .seconds(10)), !batch.more else {
            throw Unexpected(description: "no final PULL_BATCH")
        }
        return client
    }

    private func pushLead(_ fixture: HubFixture, store: String) throws {
        let terminal = try fixture.makeTerminal("writer-\(store)")
        try terminal.write { tx in
            try tx.insert(into: HubTestSchema.leads, primaryKey: UniqueID.make(),
                          [HubTestSchema.column("store"): .text(store), HubTestSchema.column("name"): .text("n")])
        }
        _ = try SyncClient(replica: terminal, options: fixture.options(store: store), logger: fixture.logger).syncOnce()
    }

    func testOnlySessionsWhoseScopeHoldsTheCommitAreNotified() throws {
        let fixture = try HubFixture(scopes: StoreScopePolicy())
        let first = try liveSession(fixture, store: "S1")
        let second = try liveSession(fixture, store: "S2")

        try pushLead(fixture, store: "S1")
        guard case .notify(let latest) = try first.receive(timeout: .seconds(10)) else {
            return XCTFail("the S1 session was not notified of an S1 write")
        }
        XCTAssertEqual(latest, 1)

        // Had S2 been told of the S1 write, its one NOTIFY (sent once until it pulls) would say 1.
        try pushLead(fixture, store: "S2")
        guard case .notify(let secondLatest) = try second.receive(timeout: .seconds(10)) else {
            return XCTFail("the S2 session was not notified of an S2 write")
        }
        XCTAssertEqual(secondLatest, 2, "the S2 session was notified of the S1 write")
    }
}
