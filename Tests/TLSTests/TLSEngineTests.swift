import Crypto
import Foundation
import Synchronization
import XCTest
@testable import TLS

/// Two engines wired to each other in memory: handshakes, data, back-pressure, closing, and
/// every refusal, with bytes delivered whole, split at random points and one at a time.
final class TLSEngineTests: XCTestCase {
    // MARK: success

    func testMutualHandshakeAndDataBothWays() throws {
        let fixture = try TLSFixture()
        let server = try fixture.server()
        let client = try fixture.client()
        for delivery in Delivery.allCases {
            var link = try Link(client: client, server: server, delivery: delivery)
            link.run()
            XCTAssertNil(link.client.error, "\(delivery)")
            XCTAssertNil(link.server.error, "\(delivery)")
            XCTAssertTrue(link.client.engine.isHandshakeComplete, "\(delivery)")
            XCTAssertTrue(link.server.engine.isHandshakeComplete, "\(delivery)")

            // Each side knows the other from its certificate.
            let terminal = try XCTUnwrap(link.server.engine.peerIdentity)
            XCTAssertEqual(terminal.role, .terminal)
            XCTAssertEqual(terminal.scope, .store("S01"))
            XCTAssertEqual(terminal, try fixture.terminalCertificate.identity())
            let hub = try XCTUnwrap(link.client.engine.peerIdentity)
            XCTAssertEqual(hub.role, .hub)
            XCTAssertEqual(hub.scope, .region("east"))

            let up = patternBytes(70_000, seed: 1)
            let down = patternBytes(5_000, seed: 2)
            try link.write(up, from: link.client)
            try link.write(down, from: link.server)
            link.run()
            XCTAssertEqual(link.server.received, up, "\(delivery)")
            XCTAssertEqual(link.client.received, down, "\(delivery)")
            XCTAssertNil(link.client.error)
            XCTAssertNil(link.server.error)
        }
    }

    func testIdentityComesFromTheCertificateOfEachRole() throws {
        let fixture = try TLSFixture()
        let server = try fixture.server()
        let cases: [(DeviceRole, DeviceScope)] = [(.hub, .region("west")), (.hq, .all), (.analyst, .analyst("ana"))]
        for (role, scope) in cases {
            let (certificate, key) = try TLSFixture.issue(fixture.ca, role: role, scope: scope, name: "peer", now: fixture.now)
            // A regional hub dials HQ; an analyst dials a hub: clients that accept the server's role.
            let client = try TLSContext(side: .client, certificate: certificate, privateKey: key, chainCA: fixture.ca.certificate)
            var link = try Link(client: client, server: server, delivery: .whole)
            link.run()
            XCTAssertNil(link.server.error)
            XCTAssertEqual(link.server.engine.peerIdentity?.role, role)
            XCTAssertEqual(link.server.engine.peerIdentity?.scope, scope)
        }
    }

    // MARK: need more bytes / flush and come back

    func testWantReadIsNeedMoreBytes() throws {
        let fixture = try TLSFixture()
        let client = try TLSEngine(context: try fixture.client())
        let server = try TLSEngine(context: try fixture.server())

        // Nothing has arrived: every call says "need more bytes", writes included.
        XCTAssertEqual(try server.handshake(), .needMoreBytes)
        XCTAssertEqual(try server.read(), .needMoreBytes)
        XCTAssertEqual(try server.write(Array("early".utf8)), .needMoreBytes)
        XCTAssertEqual(server.outboundByteCount, 0)

        // The client's first step writes its ClientHello and then waits.
        XCTAssertEqual(try client.handshake(), .needMoreBytes)
        let hello = client.takeOutbound()
        XCTAssertGreaterThan(hello.count, 0)
        XCTAssertEqual(try client.handshake(), .needMoreBytes)

        // Half a ClientHello is still "need more bytes", with nothing to send.
        try server.receive(Array(hello.prefix(hello.count / 2)))
        XCTAssertEqual(try server.handshake(), .needMoreBytes)
        XCTAssertEqual(server.outboundByteCount, 0)
        try server.receive(Array(hello.dropFirst(hello.count / 2)))
        XCTAssertEqual(try server.handshake(), .needMoreBytes)
        let flight = server.takeOutbound()
        XCTAssertGreaterThan(flight.count, 0)

        try client.receive(flight)
        XCTAssertEqual(try client.handshake(), .complete)
        try server.receive(client.takeOutbound())
        XCTAssertEqual(try server.handshake(), .complete)
        XCTAssertEqual(try server.read(), .needMoreBytes)
    }

    func testFlushAndComeBackWithPartialWrites() throws {
        let fixture = try TLSFixture()
        // A small outbound budget, so the engine asks to be flushed often.
        let limit = 20 * 1024
        var link = try Link(
            client: try fixture.client(maxOutboundCiphertext: limit), server: try fixture.server(),
            delivery: .randomSplits)
        link.run()
        XCTAssertNil(link.client.error)

        let payload = patternBytes(300_000, seed: 7)
        let engine = link.client.engine
        guard case .wrote(let first) = try engine.write(payload) else { return XCTFail("first write refused") }
        XCTAssertLessThan(first, payload.count, "a write larger than the budget is partial")
        XCTAssertGreaterThan(first, 0)
        // Without a flush, the budget is spent: "flush and come back".
        var offset = first
        while case .wrote(let more) = try engine.write(Array(payload[offset...])) { offset += more }
        XCTAssertEqual(try engine.write(Array(payload[offset...])), .flushOutbound)
        XCTAssertGreaterThanOrEqual(engine.outboundByteCount, limit)

        // The socket takes a little at a time (partial socket writes): 1,000 bytes per turn.
        while offset < payload.count || engine.outboundByteCount > 0 {
            link.deliver(from: link.client, to: link.server, maxBytes: 1000)
            if offset < payload.count, case .wrote(let more) = try engine.write(Array(payload[offset...])) {
                offset += more
            }
        }
        link.run()
        XCTAssertNil(link.server.error)
        XCTAssertEqual(link.server.received, payload)
    }

    // MARK: closing

    func testCloseNotifyIsACleanEnd() throws {
        let fixture = try TLSFixture()
        for delivery in Delivery.allCases {
            var link = try Link(client: try fixture.client(), server: try fixture.server(), delivery: delivery)
            link.run()
            try link.write(Array("last words".utf8), from: link.client)
            XCTAssertEqual(try link.client.engine.close(), .complete)
            XCTAssertThrowsError(try link.client.engine.write(Array("more".utf8))) {
                XCTAssertEqual($0 as? TLSError, .closed)
            }
            link.run()
            XCTAssertEqual(link.server.received, Array("last words".utf8), "\(delivery)")
            XCTAssertTrue(link.server.sawCloseNotify, "\(delivery)")
            XCTAssertNil(link.server.error, "\(delivery)")
            // The TCP end of stream after close_notify is still a clean close.
            link.server.engine.receiveEndOfStream()
            XCTAssertEqual(try link.server.engine.read(), .closed)

            // The server answers with its own close_notify; the client sees it.
            XCTAssertEqual(try link.server.engine.close(), .complete)
            link.run()
            XCTAssertTrue(link.client.sawCloseNotify, "\(delivery)")
        }
    }

    func testEndOfStreamWithoutCloseNotifyIsReportedDistinctly() throws {
        let fixture = try TLSFixture()
        var link = try Link(client: try fixture.client(), server: try fixture.server(), delivery: .whole)
        link.run()
        try link.write(Array("data".utf8), from: link.client)
        link.run()
        XCTAssertEqual(link.server.received, Array("data".utf8))
        // The peer's TCP stream ends between records, with no close_notify.
        link.server.engine.receiveEndOfStream()
        XCTAssertThrowsError(try link.server.engine.read()) {
            XCTAssertEqual($0 as? TLSError, .peerClosedWithoutCloseNotify)
        }
        // The engine stays failed with the same error.
        XCTAssertThrowsError(try link.server.engine.read()) {
            XCTAssertEqual($0 as? TLSError, .peerClosedWithoutCloseNotify)
        }

        // The stream ends inside a record (a truncation): the same distinct outcome.
        var second = try Link(client: try fixture.client(), server: try fixture.server(), delivery: .whole)
        second.run()
        XCTAssertEqual(try second.client.engine.write(patternBytes(2000, seed: 3)), .wrote(2000))
        let record = second.client.engine.takeOutbound()
        try second.server.engine.receive(Array(record.prefix(record.count / 2)))
        XCTAssertEqual(try second.server.engine.read(), .needMoreBytes)
        second.server.engine.receiveEndOfStream()
        XCTAssertThrowsError(try second.server.engine.read()) {
            XCTAssertEqual($0 as? TLSError, .peerClosedWithoutCloseNotify)
        }

        // During the handshake too.
        let server = try TLSEngine(context: try fixture.server())
        server.receiveEndOfStream()
        XCTAssertThrowsError(try server.handshake()) {
            XCTAssertEqual($0 as? TLSError, .peerClosedWithoutCloseNotify)
        }
    }

    // MARK: refusals

    /// Runs a handshake in every delivery mode and checks both sides' errors; the refusing
    /// side's alert must reach the other (flushed after the error).
    private func assertRefused(
        client: TLSContext, server: TLSContext,
        clientError: TLSError?, serverError: TLSError?,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for delivery in Delivery.allCases {
            var link = try Link(client: client, server: server, delivery: delivery)
            link.run()
            XCTAssertEqual(link.client.error, clientError, "client, \(delivery)", file: file, line: line)
            XCTAssertEqual(link.server.error, serverError, "server, \(delivery)", file: file, line: line)
            XCTAssertTrue(link.server.received.isEmpty, file: file, line: line)
            if serverError != nil { XCTAssertNil(link.server.engine.peerIdentity, file: file, line: line) }
        }
    }

    func testClientWithoutCertificateIsRefused() throws {
        let fixture = try TLSFixture()
        let anonymous = try TLSContext(
            side: .client, certificate: nil, privateKey: nil, trust: .chainCA(fixture.ca.certificate),
            clientCertificates: .required, acceptedPeerRoles: nil, isRevoked: nil, maxOutboundCiphertext: 64 * 1024,
            versions: .tls13Only)
        try self.assertRefused(
            client: anonymous, server: try fixture.server(),
            clientError: .peerRefused(.certificateRequired), serverError: .verificationFailed(.noCertificate))
    }

    func testSelfSignedClientIsRefused() throws {
        let fixture = try TLSFixture()
        let key = try PrivateKey.generateP256()
        let forged = try CertificateAuthority.selfSignedDevice(
            key: key, name: "till 1", role: .terminal, scope: .store("S01"), replicaID: try SecureRandom.bytes(16),
            notBefore: fixture.now.addingTimeInterval(-60), notAfter: fixture.now.addingTimeInterval(3600))
        let client = try TLSContext(side: .client, certificate: forged, privateKey: key, chainCA: fixture.ca.certificate)
        try self.assertRefused(
            client: client, server: try fixture.server(),
            clientError: .peerRefused(.unknownCA), serverError: .verificationFailed(.selfSigned))
    }

    func testClientFromAnotherChainIsRefused() throws {
        let fixture = try TLSFixture()
        let otherCA = try TLSFixture.makeCA(name: "Other Chain Root", now: fixture.now)
        let (certificate, key) = try TLSFixture.issue(otherCA, role: .terminal, scope: .store("S01"), name: "till 1", now: fixture.now)
        let client = try TLSContext(side: .client, certificate: certificate, privateKey: key, chainCA: fixture.ca.certificate)
        try self.assertRefused(
            client: client, server: try fixture.server(),
            clientError: .peerRefused(.unknownCA), serverError: .verificationFailed(.unknownIssuer))
    }

    func testExpiredClientIsRefused() throws {
        let fixture = try TLSFixture()
        let (certificate, key) = try TLSFixture.issue(
            fixture.ca, role: .terminal, scope: .store("S01"), name: "till 1", now: fixture.now,
            notBefore: -2 * 86_400, notAfter: -86_400)
        let client = try TLSContext(side: .client, certificate: certificate, privateKey: key, chainCA: fixture.ca.certificate)
        try self.assertRefused(
            client: client, server: try fixture.server(),
            clientError: .peerRefused(.certificateExpired), serverError: .verificationFailed(.expired))
    }

    func testImpostorHubIsRefusedByTheClient() throws {
        let fixture = try TLSFixture()
        // A hub from another chain: the client trusts only its own CA.
        let otherCA = try TLSFixture.makeCA(name: "Impostor Root", now: fixture.now)
        let (certificate, key) = try TLSFixture.issue(otherCA, role: .hub, scope: .region("east"), name: "hub east", now: fixture.now)
        let impostor = try TLSContext(side: .server, certificate: certificate, privateKey: key, chainCA: otherCA.certificate)
        try self.assertRefused(
            client: try fixture.client(), server: impostor,
            clientError: .verificationFailed(.unknownIssuer), serverError: .peerRefused(.unknownCA))

        // A genuine certificate of the chain, but a terminal's (stolen), posing as a hub.
        let posing = try TLSContext(
            side: .server, certificate: fixture.terminalCertificate, privateKey: fixture.terminalKey, chainCA: fixture.ca.certificate)
        try self.assertRefused(
            client: try fixture.client(), server: posing,
            clientError: .verificationFailed(.roleNotAccepted(.terminal)), serverError: .peerRefused(.handshakeFailure))
    }

    func testRevokedSerialIsRefusedByTheHook() throws {
        let fixture = try TLSFixture()
        let revokedSerial = try XCTUnwrap(fixture.terminalCertificate.serial)
        let asked = Mutex<[CertificateSerial]>([])
        let revoked = Mutex<Set<CertificateSerial>>([revokedSerial])
        let server = try fixture.server(isRevoked: { serial in
            asked.withLock { $0.append(serial) }
            return revoked.withLock { $0.contains(serial) }
        })
        try self.assertRefused(
            client: try fixture.client(), server: server,
            clientError: .peerRefused(.certificateRevoked), serverError: .verificationFailed(.revoked))
        XCTAssertEqual(Set(asked.withLock { $0 }), [revokedSerial])

        // The same context admits the device once it is no longer on the list.
        revoked.withLock { $0.removeAll() }
        var link = try Link(client: try fixture.client(), server: server, delivery: .whole)
        link.run()
        XCTAssertNil(link.server.error)
        XCTAssertEqual(link.server.engine.peerIdentity?.serial, revokedSerial)
    }

    func testTLS12OnlyClientIsRefused() throws {
        let fixture = try TLSFixture()
        let legacy = try TLSContext(
            side: .client, certificate: fixture.terminalCertificate, privateKey: fixture.terminalKey,
            trust: .chainCA(fixture.ca.certificate), clientCertificates: .required, acceptedPeerRoles: nil, isRevoked: nil,
            maxOutboundCiphertext: 64 * 1024, versions: .tls12OnlyForTesting)
        try self.assertRefused(
            client: legacy, server: try fixture.server(),
            clientError: .protocolVersionRefused, serverError: .protocolVersionRefused)
    }

    func testCertificateWithoutIdentityIsRefused() throws {
        let fixture = try TLSFixture()
        let key = try PrivateKey.generateP256()
        // Issued by the right CA, but it says nothing about scope or replica.
        let certificate = try fixture.ca.issue(
            request: try CertificateRequest(key: key, commonName: "till 1"), name: "till 1",
            uris: ["urn:storesync:role:terminal"],
            notBefore: fixture.now.addingTimeInterval(-60), notAfter: fixture.now.addingTimeInterval(3600))
        let client = try TLSContext(side: .client, certificate: certificate, privateKey: key, chainCA: fixture.ca.certificate)
        try self.assertRefused(
            client: client, server: try fixture.server(),
            clientError: .peerRefused(.handshakeFailure), serverError: .verificationFailed(.badIdentity(.missingField("scope"))))
    }

    func testPlaintextClientIsRefused() throws {
        let fixture = try TLSFixture()
        let server = try TLSEngine(context: try fixture.server())
        // A v1 StoreSync client that does not speak TLS: its first bytes are a frame, not a record.
        try server.receive(Array("SSYN\u{0}\u{1}\u{0}\u{0}\u{0}\u{10}HELLO plaintext....".utf8))
        XCTAssertThrowsError(try server.handshake()) { error in
            guard case .protocolFailure = error as? TLSError else { return XCTFail("\(error)") }
        }
    }
}
