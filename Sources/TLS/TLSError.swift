import Crypto

/// A TLS alert number as sent by the peer. `description` is the RFC 8446 name.
public struct TLSAlert: Sendable, Hashable, CustomStringConvertible {
    public let code: UInt8

    public init(code: UInt8) { self.code = code }

    public static let handshakeFailure = TLSAlert(code: 40)
    public static let badCertificate = TLSAlert(code: 42)
    public static let certificateRevoked = TLSAlert(code: 44)
    public static let certificateExpired = TLSAlert(code: 45)
    public static let certificateUnknown = TLSAlert(code: 46)
    public static let unknownCA = TLSAlert(code: 48)
    public static let accessDenied = TLSAlert(code: 49)
    public static let decryptError = TLSAlert(code: 51)
    public static let protocolVersion = TLSAlert(code: 70)
    public static let internalError = TLSAlert(code: 80)
    public static let certificateRequired = TLSAlert(code: 116)

    public var description: String {
        switch self.code {
        case 40: return "handshake_failure"
        case 42: return "bad_certificate"
        case 44: return "certificate_revoked"
        case 45: return "certificate_expired"
        case 46: return "certificate_unknown"
        case 48: return "unknown_ca"
        case 49: return "access_denied"
        case 51: return "decrypt_error"
        case 70: return "protocol_version"
        case 80: return "internal_error"
        case 116: return "certificate_required"
        default: return "alert \(self.code)"
        }
    }
}

/// Why a TLS engine stopped. Each case names what failed and carries no key material, no
/// plaintext and no certificate contents, so it may be logged as is.
public enum TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// This side refused the peer's certificate (or its absence).
    case verificationFailed(VerificationFailure)
    /// The peer refused this side: it sent a fatal alert (e.g. unknown_ca, certificate_required).
    case peerRefused(TLSAlert)
    /// The byte stream ended without the peer's close_notify: possibly a truncation, never a
    /// clean end of the session.
    case peerClosedWithoutCloseNotify
    /// The peer offered no TLS 1.3.
    case protocolVersionRefused
    /// Any other failure of the TLS protocol: OpenSSL's reason text.
    case protocolFailure(String)
    /// `write` or `close` after this side already closed.
    case closed
    /// The context could not be set up (key does not match certificate, …).
    case configuration(String)
    case outOfMemory(String)

    public var description: String {
        switch self {
        case .verificationFailed(let failure): return "peer certificate refused: \(failure)"
        case .peerRefused(let alert): return "refused by peer: \(alert)"
        case .peerClosedWithoutCloseNotify: return "peer closed without close_notify"
        case .protocolVersionRefused: return "peer does not speak TLS 1.3"
        case .protocolFailure(let reason): return "TLS failure: \(reason)"
        case .closed: return "TLS session closed"
        case .configuration(let reason): return "TLS configuration: \(reason)"
        case .outOfMemory(let call): return "out of memory in \(call)"
        }
    }
}
