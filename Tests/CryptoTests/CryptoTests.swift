import Crypto
import Foundation
import XCTest

/// Keys, hashes, the private CA and the identity carried by device certificates.
final class CryptoTests: XCTestCase {
    private var directory: URL?

    override func setUpWithError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-crypto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.directory = url
    }

    override func tearDownWithError() throws {
        if let directory { try FileManager.default.removeItem(at: directory) }
        self.directory = nil
    }

    private func path(_ name: String) throws -> String {
        try XCTUnwrap(self.directory).appendingPathComponent(name).path
    }

    // MARK: primitives

    func testSHA256KnownVectors() throws {
        XCTAssertEqual(try Digest.sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(try Digest.sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testRandomBytes() throws {
        let first = try SecureRandom.bytes(32)
        let second = try SecureRandom.bytes(32)
        XCTAssertEqual(first.count, 32)
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(try SecureRandom.bytes(0), [])
    }

    func testKeyPEMRoundTripAndFileMode() throws {
        let key = try PrivateKey.generateP256()
        let pem = try key.pem()
        XCTAssertTrue(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let again = try PrivateKey(pem: pem)
        XCTAssertEqual(try again.publicKeyDER(), try key.publicKeyDER())

        let file = try self.path("key.pem")
        // A loose umask must not loosen the key file.
        let previous = umask(0)
        defer { umask(previous) }
        try key.write(toFile: file)
        var info = stat()
        XCTAssertEqual(stat(file, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(try PrivateKey(pemFile: file).publicKeyDER(), try key.publicKeyDER())
        // Overwriting keeps the mode and leaves no temporary file behind.
        try PrivateKey.generateP256().write(toFile: file)
        XCTAssertEqual(stat(file, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: try XCTUnwrap(self.directory).path), ["key.pem"])
    }

    func testGarbagePEMIsATypedError() {
        XCTAssertThrowsError(try PrivateKey(pem: "not a key")) { error in
            XCTAssertEqual((error as? CryptoError)?.kind, .decoding)
        }
        XCTAssertThrowsError(try Certificate(pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
        XCTAssertThrowsError(try Certificate(der: [0x30, 0x03, 0x02, 0x01]))
    }

    /// An encrypted key (a throwaway made for this test) is refused, never prompted for: a
    /// daemon has no terminal, and a prompt would hang it.
    func testEncryptedKeyIsRefusedWithoutPrompting() {
        let encrypted = """
            -----BEGIN ENCRYPTED PRIVATE KEY-----
            MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAh7xcZ2CDjLDQICCAAw
            DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEI5zmql6/ToRbomrrnjDBzkEgZAG
            8d7NHA1K/yOUe+Rw+ROr7P21fLVMfuWRYCSle/7rRYQS+SiCi04e7MgAN79fBpVG
            z3fDDWaSJz/FsHX/YnTyr1Fq2MJdTum/z2e80AtSgfstxJnf0GW7wQ2R7K7YO/EH
            LqRB9omqTCCmzm72Ki8Z2UCgWQHOh3fMXJPmyPl3s6ivG/4IqQ3Tquyv+it4GMw=
            -----END ENCRYPTED PRIVATE KEY-----

            """
        XCTAssertThrowsError(try PrivateKey(pem: encrypted)) { error in
            XCTAssertEqual((error as? CryptoError)?.kind, .decoding)
        }
    }

    // MARK: CA and issuance

    func testRootCA() throws {
        let fixture = try CryptoFixture()
        let root = fixture.ca.certificate
        XCTAssertTrue(root.isCA)
        XCTAssertEqual(root.commonName, "StoreSync Test Root")
        XCTAssertNoThrow(try root.verify(trusting: [root]))
        XCTAssertThrowsError(try root.identity()) { error in
            XCTAssertEqual(error as? IdentityError, .malformedField("basicConstraints"))
        }
        // A CA needs its own key.
        XCTAssertThrowsError(try CertificateAuthority(certificate: root, key: try PrivateKey.generateP256()))
    }

    func testIssuedCertificateCarriesTheIdentity() throws {
        let fixture = try CryptoFixture()
        let replica = try SecureRandom.bytes(16)
        let serial = try CertificateSerial.random()
        let key = try PrivateKey.generateP256()
        let request = try CertificateRequest(key: key, commonName: "till 3")
        let requestAgain = try CertificateRequest(pem: try request.pem())
        XCTAssertTrue(requestAgain.hasValidSignature)
        XCTAssertEqual(try requestAgain.publicKeyDER(), try key.publicKeyDER())

        let notAfter = fixture.now.addingTimeInterval(90 * 86_400)
        let certificate = try fixture.ca.issue(
            request: requestAgain, name: "till 3", role: .terminal, scope: .store("S01"), replicaID: replica,
            notBefore: fixture.now.addingTimeInterval(-60), notAfter: notAfter, serial: serial)
        let identity = try certificate.identity()
        XCTAssertEqual(identity.role, .terminal)
        XCTAssertEqual(identity.scope, .store("S01"))
        XCTAssertEqual(identity.replicaID, replica)
        XCTAssertEqual(identity.replicaIDHex.count, 32)
        XCTAssertEqual(identity.serial, serial)
        XCTAssertEqual(identity.name, "till 3")
        XCTAssertEqual(identity.notAfter.timeIntervalSince1970, notAfter.timeIntervalSince1970.rounded(.down))
        XCTAssertEqual(identity.fingerprint, try Digest.sha256Hex(try certificate.der()))
        XCTAssertNoThrow(try certificate.verify(trusting: [fixture.ca.certificate], at: fixture.now))

        // PEM and DER round trips give the same certificate.
        XCTAssertEqual(try Certificate(pem: try certificate.pem()), certificate)
        XCTAssertEqual(try Certificate(der: try certificate.der()), certificate)
        let chain = try Certificate.all(pem: try certificate.pem() + fixture.ca.certificate.pem())
        XCTAssertEqual(chain.count, 2)
    }

    func testEveryRoleAndScope() throws {
        let fixture = try CryptoFixture()
        let cases: [(DeviceRole, DeviceScope)] = [
            (.terminal, .store("S01")), (.hub, .region("east")), (.hq, .all), (.analyst, .analyst("ana.li")),
        ]
        for (role, scope) in cases {
            let identity = try fixture.issue(role: role, scope: scope).certificate.identity()
            XCTAssertEqual(identity.role, role)
            XCTAssertEqual(identity.scope, scope)
        }
        // The CA refuses to pair a role with another role's scope.
        XCTAssertThrowsError(try fixture.issue(role: .terminal, scope: .region("east")))
        XCTAssertThrowsError(try fixture.issue(role: .terminal, scope: .store("S 01")).certificate.identity())
    }

    func testScopeText() {
        XCTAssertEqual(DeviceScope("store:S01"), .store("S01"))
        XCTAssertEqual(DeviceScope("region:east"), .region("east"))
        XCTAssertEqual(DeviceScope("all"), .all)
        XCTAssertEqual(DeviceScope("analyst:ana"), .analyst("ana"))
        for bad in ["store:", "store", "shop:S01", "store:S 01", "store:S01,URI:x", "ALL", "store:" + String(repeating: "a", count: 65)] {
            XCTAssertNil(DeviceScope(bad), bad)
        }
    }

    func testVerificationFailuresAreNamed() throws {
        let fixture = try CryptoFixture()
        let device = try fixture.issue(role: .terminal, scope: .store("S01"))
        let roots = [fixture.ca.certificate]
        XCTAssertThrowsError(try device.certificate.verify(trusting: roots, at: fixture.now.addingTimeInterval(91 * 86_400))) {
            XCTAssertEqual($0 as? VerificationFailure, .expired)
        }
        XCTAssertThrowsError(try device.certificate.verify(trusting: roots, at: fixture.now.addingTimeInterval(-86_400))) {
            XCTAssertEqual($0 as? VerificationFailure, .notYetValid)
        }
        let other = try CryptoFixture(name: "Other Chain")
        XCTAssertThrowsError(try device.certificate.verify(trusting: [other.ca.certificate], at: fixture.now)) {
            XCTAssertEqual($0 as? VerificationFailure, .unknownIssuer)
        }
        let key = try PrivateKey.generateP256()
        let forged = try CertificateAuthority.selfSignedDevice(
            key: key, name: "forged", role: .hub, scope: .region("east"), replicaID: try SecureRandom.bytes(16),
            notBefore: fixture.now.addingTimeInterval(-60), notAfter: fixture.now.addingTimeInterval(3600))
        XCTAssertNoThrow(try forged.identity())  // well formed, but…
        XCTAssertThrowsError(try forged.verify(trusting: roots, at: fixture.now)) {
            XCTAssertEqual($0 as? VerificationFailure, .selfSigned)
        }
    }

    func testIdentityFieldsMissingDuplicatedOrMalformedAreRefused() throws {
        let fixture = try CryptoFixture()
        let replica = "urn:storesync:replica:" + String(repeating: "ab", count: 16)
        let role = "urn:storesync:role:terminal"
        let scope = "urn:storesync:scope:store:S01"
        let cases: [([String], IdentityError)] = [
            ([], .missingSubjectAltName),
            ([scope, replica], .missingField("role")),
            ([role, replica], .missingField("scope")),
            ([role, scope], .missingField("replica")),
            ([role, role, scope, replica], .duplicateField("role")),
            ([role, scope, scope, replica], .duplicateField("scope")),
            ([role, scope, replica, replica], .duplicateField("replica")),
            (["urn:storesync:role:admin", scope, replica], .malformedField("role")),
            ([role, "urn:storesync:scope:shop:S01", replica], .malformedField("scope")),
            ([role, scope, "urn:storesync:replica:" + String(repeating: "AB", count: 16)], .malformedField("replica")),
            ([role, scope, "urn:storesync:replica:abcd"], .malformedField("replica")),
            ([role, scope, replica, "urn:storesync:store:S02"], .unknownStoreSyncURI),
            (["urn:storesync:role:hub", scope, replica], .roleScopeMismatch),
        ]
        for (uris, expected) in cases {
            let certificate = try fixture.issue(uris: uris)
            XCTAssertThrowsError(try certificate.identity(), "\(uris)") { error in
                XCTAssertEqual(error as? IdentityError, expected, "\(uris)")
            }
        }
        // Other URIs (and other kinds of names) are allowed beside ours.
        XCTAssertNoThrow(try fixture.issue(uris: [role, scope, replica, "https://example.invalid/x"]).identity())
    }

    // MARK: other languages read the same files

    /// Python's `cryptography` and `ssl` read the files this module writes, and see the same
    /// identity. Skipped where python3 (with cryptography) is not installed.
    func testPythonReadsTheSameFiles() throws {
        let fixture = try CryptoFixture()
        let device = try fixture.issue(role: .hub, scope: .region("east"))
        try fixture.ca.certificate.write(toFile: try self.path("ca.pem"))
        try device.certificate.write(toFile: try self.path("cert.pem"))
        try device.key.write(toFile: try self.path("key.pem"))
        let identity = try device.certificate.identity()

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("check_certificates.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", script, try XCTUnwrap(self.directory).path,
            identity.serial.hex, identity.fingerprint, identity.replicaIDHex, "hub", "region:east",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw XCTSkip("cannot run python3: \(error)")
        }
        // Read before waiting, so a large output cannot block the child.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 77 || process.terminationStatus == 127 {
            throw XCTSkip("python3 or its cryptography package is missing: \(text)")
        }
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("OK"), text)
    }
}

/// A CA and helpers to issue from it, with a fixed "now" for validity checks.
struct CryptoFixture {
    let ca: CertificateAuthority
    let now = Date()

    init(name: String = "StoreSync Test Root") throws {
        let key = try PrivateKey.generateP256()
        self.ca = try CertificateAuthority.createRoot(
            commonName: name, key: key,
            notBefore: self.now.addingTimeInterval(-3600), notAfter: self.now.addingTimeInterval(3650 * 86_400))
    }

    func issue(role: DeviceRole, scope: DeviceScope, name: String = "device") throws -> (certificate: Certificate, key: PrivateKey) {
        let key = try PrivateKey.generateP256()
        let certificate = try self.ca.issue(
            request: try CertificateRequest(key: key, commonName: name), name: name, role: role, scope: scope,
            replicaID: try SecureRandom.bytes(16),
            notBefore: self.now.addingTimeInterval(-60), notAfter: self.now.addingTimeInterval(90 * 86_400))
        return (certificate, key)
    }

    func issue(uris: [String]) throws -> Certificate {
        let key = try PrivateKey.generateP256()
        return try self.ca.issue(
            request: try CertificateRequest(key: key, commonName: "device"), name: "device", uris: uris,
            notBefore: self.now.addingTimeInterval(-60), notAfter: self.now.addingTimeInterval(3600))
    }
}
