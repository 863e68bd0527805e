import Crypto
import Foundation
import XCTest
@testable import TLS

/// The first contact of a device that has no certificate yet: it knows the chain only by the CA
/// fingerprint in its enrollment token, and the hub's enrollment listener lets it in without a
/// certificate (with no identity: it may only enroll).
final class TLSEnrollmentTests: XCTestCase {
    private func enrollmentServer(_ fixture: TLSFixture) throws -> TLSContext {
        try TLSContext(
            side: .server, certificate: fixture.hubCertificate, privateKey: fixture.hubKey,
            chainCA: fixture.ca.certificate, clientCertificates: .optionalForEnrollment)
    }

    func testDeviceWithPinnedCAReachesTheEnrollmentListener() throws {
        let fixture = try TLSFixture()
        let pin = try fixture.ca.certificate.fingerprint()
        for delivery in Delivery.allCases {
            var link = try Link(
                client: try TLSContext.enrollmentClient(pinnedCAFingerprint: pin.uppercased()),
                server: try self.enrollmentServer(fixture), delivery: delivery)
            link.run()
            XCTAssertNil(link.client.error, "\(delivery)")
            XCTAssertNil(link.server.error, "\(delivery)")
            XCTAssertTrue(link.server.engine.isHandshakeComplete)
            XCTAssertNil(link.server.engine.peerIdentity, "an enrolling device has no identity yet")
            XCTAssertEqual(link.client.engine.peerIdentity?.role, .hub)
            // The device learns the CA certificate itself, the one its token named.
            XCTAssertEqual(try link.client.engine.enrollmentCA?.fingerprint(), pin)

            // The session carries data (the certificate request and the answer).
            try link.write(Array("CSR".utf8), from: link.client)
            link.run()
            XCTAssertEqual(link.server.received, Array("CSR".utf8))
        }
    }

    func testWrongPinRefusesTheHub() throws {
        let fixture = try TLSFixture()
        // An impostor's chain: the pin names our CA, the hub sends another.
        let otherCA = try TLSFixture.makeCA(name: "Impostor Root", now: fixture.now)
        let (certificate, key) = try TLSFixture.issue(otherCA, role: .hub, scope: .region("east"), name: "hub east", now: fixture.now)
        let impostor = try TLSContext(
            side: .server, certificate: certificate, privateKey: key, chainCA: otherCA.certificate,
            clientCertificates: .optionalForEnrollment)
        var link = try Link(
            client: try TLSContext.enrollmentClient(pinnedCAFingerprint: try fixture.ca.certificate.fingerprint()),
            server: impostor, delivery: .randomSplits)
        link.run()
        XCTAssertEqual(link.client.error, .verificationFailed(.unknownIssuer))
        XCTAssertEqual(link.server.error, .peerRefused(.unknownCA))
        XCTAssertNil(link.client.engine.enrollmentCA)

        // A terminal's genuine certificate posing as the hub is refused by role, pin or not.
        let posing = try TLSContext(
            side: .server, certificate: fixture.terminalCertificate, privateKey: fixture.terminalKey,
            chainCA: fixture.ca.certificate, clientCertificates: .optionalForEnrollment)
        var second = try Link(
            client: try TLSContext.enrollmentClient(pinnedCAFingerprint: try fixture.ca.certificate.fingerprint()),
            server: posing, delivery: .whole)
        second.run()
        XCTAssertEqual(second.client.error, .verificationFailed(.roleNotAccepted(.terminal)))

        XCTAssertThrowsError(try TLSContext.enrollmentClient(pinnedCAFingerprint: "abc"))
    }

    func testEnrollmentListenerStillVerifiesACertificateThatIsPresented() throws {
        let fixture = try TLSFixture()
        let server = try self.enrollmentServer(fixture)
        // An enrolled terminal (renewing over the same listener) is identified as usual…
        var link = try Link(client: try fixture.client(), server: server, delivery: .whole)
        link.run()
        XCTAssertNil(link.server.error)
        XCTAssertEqual(link.server.engine.peerIdentity?.role, .terminal)

        // …and a certificate from another chain is refused, not treated as "no certificate".
        let otherCA = try TLSFixture.makeCA(name: "Other Root", now: fixture.now)
        let (certificate, key) = try TLSFixture.issue(otherCA, role: .terminal, scope: .store("S01"), name: "till 1", now: fixture.now)
        let stranger = try TLSContext(side: .client, certificate: certificate, privateKey: key, chainCA: fixture.ca.certificate)
        var second = try Link(client: stranger, server: server, delivery: .whole)
        second.run()
        XCTAssertEqual(second.server.error, .verificationFailed(.unknownIssuer))
        XCTAssertNil(second.server.engine.peerIdentity)
    }
}
