import COpenSSL

/// A failure of an OpenSSL operation. It names the step and OpenSSL's reason text (for example
/// "bad decrypt" or "no start line"); it never carries key material, certificate bytes or
/// file contents, so it is safe to log.
public struct CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case keyGeneration, decoding, encoding, signing, randomness, digest, file, invalidArgument, outOfMemory
    }

    public let kind: Kind
    /// The OpenSSL call or step that failed, e.g. `PEM_read_bio_PrivateKey`.
    public let operation: String
    /// OpenSSL's reason text, an errno description, or our own explanation.
    public let reason: String

    public init(_ kind: Kind, _ operation: String, reason: String) {
        self.kind = kind
        self.operation = operation
        self.reason = reason
    }

    /// Builds an error from whatever OpenSSL queued for the failed call (and empties the queue,
    /// so the next call starts clean).
    package static func openSSL(_ kind: Kind, _ operation: String) -> CryptoError {
        let reason = OpenSSLErrorQueue.drain()?.reason ?? "no reason given"
        return CryptoError(kind, operation, reason: reason)
    }

    public var description: String { "\(kind.rawValue): \(operation): \(reason)" }
}

/// OpenSSL's per-thread error queue. Every call site clears it before the call and drains it
/// after a failure, so a stale error from an earlier call is never reported as this one's.
package enum OpenSSLErrorQueue {
    package static func clear() {
        ERR_clear_error()
    }

    /// Empties the queue; returns the earliest packed code and its reason text (never data).
    @discardableResult
    package static func drain() -> (code: UInt, reason: String)? {
        var first: (code: UInt, reason: String)?
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if first == nil { first = (UInt(code), reasonText(UInt(code))) }
        }
        return first
    }

    package static func reasonText(_ code: UInt) -> String {
        guard let text = ERR_reason_error_string(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
