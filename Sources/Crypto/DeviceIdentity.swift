import Foundation

/// What a certificate lets its holder be. The role decides what the device may push and see;
/// it comes from the certificate, never from what a peer claims.
public enum DeviceRole: String, Sendable, Hashable, CaseIterable {
    case terminal, hub, hq, analyst
}

/// The part of the chain a certificate covers. Each role has exactly one kind of scope:
/// terminal ↔ `store:S`, hub ↔ `region:R`, hq ↔ `all`, analyst ↔ `analyst:NAME`.
public enum DeviceScope: Sendable, Hashable, CustomStringConvertible {
    case store(String)
    case region(String)
    case all
    case analyst(String)

    /// The text after `urn:storesync:scope:` (`store:S01`, `region:east`, `all`, `analyst:ana`).
    public var description: String {
        switch self {
        case .store(let id): return "store:\(id)"
        case .region(let id): return "region:\(id)"
        case .all: return "all"
        case .analyst(let name): return "analyst:\(name)"
        }
    }

    /// Parses `description`'s form; nil for anything else (unknown kind, bad name).
    public init?(_ text: some StringProtocol) {
        let text = String(text)
        if text == "all" { self = .all; return }
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let kind = text[..<colon]
        let name = String(text[text.index(after: colon)...])
        guard DeviceScope.isValidName(name) else { return nil }
        switch kind {
        case "store": self = .store(name)
        case "region": self = .region(name)
        case "analyst": self = .analyst(name)
        default: return nil
        }
    }

    /// The role this scope belongs to.
    public var role: DeviceRole {
        switch self {
        case .store: return .terminal
        case .region: return .hub
        case .all: return .hq
        case .analyst: return .analyst
        }
    }

    /// Store, region and analyst names: 1–64 characters of `A-Z a-z 0-9 . _ -`. Kept narrow so
    /// that the URI needs no escaping and every language reads it the same way.
    public static func isValidName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count) else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }
}

/// A certificate serial number as issued by our CA: 16 bytes (128 random bits, a positive
/// ASN.1 INTEGER). It is also the device id (`storesync device list/revoke --id`).
public struct CertificateSerial: Sendable, Hashable, CustomStringConvertible {
    /// Exactly 16 bytes, big-endian, leading zero bytes kept.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16, bytes.contains(where: { $0 != 0 }) else { return nil }
        self.bytes = bytes
    }

    /// From 32 hex digits (either case).
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 32, let bytes = bytesFromHex(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// A fresh random serial.
    public static func random() throws(CryptoError) -> CertificateSerial {
        while true {
            if let serial = CertificateSerial(bytes: try SecureRandom.bytes(16)) { return serial }
        }
    }

    /// 32 lowercase hex digits.
    public var hex: String { hexString(self.bytes) }
    public var description: String { self.hex }
}

/// The StoreSync identity carried by a device certificate, read back from a verified peer.
public struct DeviceIdentity: Sendable, Hashable {
    public var role: DeviceRole
    public var scope: DeviceScope
    /// The replica id the device must use (16 bytes).
    public var replicaID: [UInt8]
    /// The certificate serial, which is the device id.
    public var serial: CertificateSerial
    /// The subject common name: the device's human-readable name.
    public var name: String
    public var notBefore: Date
    public var notAfter: Date
    /// SHA-256 of the certificate's DER, 64 lowercase hex digits.
    public var fingerprint: String

    /// 32 lowercase hex digits.
    public var replicaIDHex: String { hexString(self.replicaID) }
}

/// The URIs of the subjectAltName that carry the identity.
public enum StoreSyncURI {
    public static let rolePrefix = "urn:storesync:role:"
    public static let scopePrefix = "urn:storesync:scope:"
    public static let replicaPrefix = "urn:storesync:replica:"
    /// Any URI starting with this must be one of the three above.
    public static let namespace = "urn:storesync:"

    public static func role(_ role: DeviceRole) -> String { rolePrefix + role.rawValue }
    public static func scope(_ scope: DeviceScope) -> String { scopePrefix + scope.description }
    public static func replica(_ replicaID: [UInt8]) -> String { replicaPrefix + hexString(replicaID) }
}

/// Why a certificate does not carry a usable StoreSync identity. Names the field, never the
/// value (a peer's text does not reach our logs).
public enum IdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    case missingSubjectAltName
    case duplicateSubjectAltName
    case missingField(String)
    case duplicateField(String)
    case malformedField(String)
    case unknownStoreSyncURI
    case roleScopeMismatch
    case missingCommonName
    case serialNotIssuedByStoreSync
    case unreadable(String)

    public var description: String {
        switch self {
        case .missingSubjectAltName: return "certificate has no subjectAltName"
        case .duplicateSubjectAltName: return "certificate has more than one subjectAltName extension"
        case .missingField(let field): return "certificate lacks the StoreSync \(field) URI"
        case .duplicateField(let field): return "certificate carries the StoreSync \(field) URI more than once"
        case .malformedField(let field): return "certificate's StoreSync \(field) URI is malformed"
        case .unknownStoreSyncURI: return "certificate carries an unknown urn:storesync: URI"
        case .roleScopeMismatch: return "certificate's role and scope do not belong together"
        case .missingCommonName: return "certificate has no usable subject common name"
        case .serialNotIssuedByStoreSync: return "certificate serial is not a 128-bit StoreSync serial"
        case .unreadable(let what): return "certificate unreadable: \(what)"
        }
    }
}

/// Why a certificate was not accepted. Names the check that failed; no secrets, no names.
public enum VerificationFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not issued by the chain's CA (another chain's certificate).
    case unknownIssuer
    /// Self-signed and not our CA.
    case selfSigned
    case expired
    case notYetValid
    case badSignature
    /// Refused by the revocation hook.
    case revoked
    /// The peer sent no certificate.
    case noCertificate
    /// Verified, but the StoreSync identity fields are missing, duplicated or malformed.
    case badIdentity(IdentityError)
    /// Verified, but the role is not one this side accepts (a client dialing a hub that shows a
    /// terminal's certificate).
    case roleNotAccepted(DeviceRole)
    /// Any other X.509 verification error: OpenSSL's code and its fixed text.
    case other(code: Int32, reason: String)

    public var description: String {
        switch self {
        case .unknownIssuer: return "certificate not issued by the trusted CA"
        case .selfSigned: return "self-signed certificate not trusted"
        case .expired: return "certificate expired"
        case .notYetValid: return "certificate not yet valid"
        case .badSignature: return "certificate signature invalid"
        case .revoked: return "certificate revoked"
        case .noCertificate: return "no certificate presented"
        case .badIdentity(let error): return "bad identity: \(error)"
        case .roleNotAccepted(let role): return "peer role \(role.rawValue) not accepted here"
        case .other(let code, let reason): return "verification failed (\(code)): \(reason)"
        }
    }
}
