import COpenSSL
import Crypto

/// What a handshake or close step needs next.
public enum TLSStatus: Sendable, Equatable {
    case complete
    /// WANT_READ: feed more ciphertext from the network (`receive`), then call again.
    case needMoreBytes
    /// WANT_WRITE: send `takeOutbound()` to the network, then call again.
    case flushOutbound
}

/// The result of one `read`.
public enum TLSRead: Sendable, Equatable {
    /// Decrypted application bytes (never empty).
    case plaintext([UInt8])
    case needMoreBytes
    case flushOutbound
    /// The peer sent close_notify: a clean end of its side. An end of stream without it is
    /// thrown as `TLSError.peerClosedWithoutCloseNotify` instead.
    case closed
}

/// The result of one `write`.
public enum TLSWrite: Sendable, Equatable {
    /// The first `n` bytes were encrypted (possibly fewer than given: a partial write; offer
    /// the rest again after flushing).
    case wrote(Int)
    case needMoreBytes
    case flushOutbound
}

/// One TLS session as a stage between a socket and the protocol: it never touches a socket.
///
/// Ciphertext from the network goes in with `receive` (a memory BIO), plaintext comes out of
/// `read`; plaintext goes in with `write` and the ciphertext to send comes out of
/// `takeOutbound`, which the caller writes to the network (any amount at a time). Every call
/// that can make progress may also produce outbound bytes (handshake messages, alerts): the
/// caller flushes `takeOutbound()` after each. After a thrown error the engine is dead (every
/// later call throws the same error) but its outbound bytes may hold an alert telling the peer
/// why: flush them, then close the socket.
///
/// Not thread-safe: one owner (a connection's queue, or a lock) drives it.
public final class TLSEngine {
    public let context: TLSContext
    /// The peer's verified identity, once the handshake is complete. Nil only on a server
    /// taking enrollments (`.optionalForEnrollment`) when the device presented no certificate:
    /// such a session may enroll and nothing else.
    public private(set) var peerIdentity: DeviceIdentity?

    /// For an enrollment client: the CA certificate the hub sent whose fingerprint matched the
    /// pin, once the handshake is complete (store it as the chain CA file).
    public var enrollmentCA: Certificate? {
        self.isHandshakeComplete ? self.verification.pinnedCA : nil
    }

    private enum Phase {
        case handshaking
        case established
        /// The peer's close_notify arrived.
        case closedByPeer
        case failed(TLSError)
    }

    private let ssl: OpaquePointer
    /// Both BIOs are owned by `ssl`; these are borrowed references, replaced when a BIO is
    /// swapped for a fresh one.
    private var inbound: OpaquePointer
    private var outbound: OpaquePointer
    private let verification: PeerVerification
    private var phase = Phase.handshaking
    private var endOfStream = false
    private var sentCloseNotify = false
    /// Bytes through each memory BIO since it was made: a memory BIO keeps its largest buffer,
    /// so after traffic an idle engine swaps it for a fresh, empty one.
    private var inboundSinceFresh = 0
    private var outboundSinceFresh = 0
    private static let freshBIOThreshold = 4 * 1024

    public init(context: TLSContext) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.pointer) else { throw .outOfMemory("SSL_new") }
        guard let inbound = TLSEngine.newMemoryBIO() else {
            SSL_free(ssl)
            throw .outOfMemory("BIO_new")
        }
        guard let outbound = TLSEngine.newMemoryBIO() else {
            BIO_free(inbound)
            SSL_free(ssl)
            throw .outOfMemory("BIO_new")
        }
        // From here `ssl` owns both BIOs; deinit frees all three.
        SSL_set_bio(ssl, inbound, outbound)
        self.context = context
        self.ssl = ssl
        self.inbound = inbound
        self.outbound = outbound
        self.verification = PeerVerification(context: context)
        switch context.side {
        case .server: SSL_set_accept_state(ssl)
        case .client: SSL_set_connect_state(ssl)
        }
        // The verify callback finds this engine's verification state through app data (index
        // 0); unretained is safe because `ssl` dies in our deinit, before `verification`.
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self.verification).toOpaque())
    }

    deinit {
        SSL_free(self.ssl)
    }

    /// A memory BIO that answers "retry" when empty (more bytes may come).
    private static func newMemoryBIO() -> OpaquePointer? {
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        storesync_bio_set_mem_eof_return(bio, -1)
        return bio
    }

    // MARK: network side

    /// Ciphertext read from the network.
    public func receive(_ ciphertext: UnsafeRawBufferPointer) throws(TLSError) {
        guard !self.endOfStream else { throw .protocolFailure("bytes received after end of stream") }
        guard let base = ciphertext.baseAddress, ciphertext.count > 0 else { return }
        var offset = 0
        while offset < ciphertext.count {
            let chunk = Int32(clamping: ciphertext.count - offset)
            // A memory BIO takes everything unless allocation fails.
            let written = BIO_write(self.inbound, base + offset, chunk)
            guard written > 0 else { throw .outOfMemory("BIO_write") }
            offset += Int(written)
        }
        self.inboundSinceFresh += ciphertext.count
    }

    public func receive(_ ciphertext: [UInt8]) throws(TLSError) {
        let result: Result<Void, TLSError> = ciphertext.withUnsafeBytes { raw in
            do throws(TLSError) {
                try self.receive(raw)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// The network connection ended (read returned 0). Pending ciphertext is still processed;
    /// then `read` reports `.closed` if close_notify came, or throws
    /// `.peerClosedWithoutCloseNotify` if it did not.
    public func receiveEndOfStream() {
        self.endOfStream = true
        // An empty BIO now answers "end of file" instead of "retry".
        storesync_bio_set_mem_eof_return(self.inbound, 0)
    }

    /// Ciphertext waiting to be written to the network.
    public var outboundByteCount: Int { Int(BIO_ctrl_pending(self.outbound)) }

    /// Takes up to `maxBytes` of the ciphertext to send (a partial take leaves the rest for
    /// the next call, as a partial socket write would).
    public func takeOutbound(maxBytes: Int = Int.max) -> [UInt8] {
        let count = min(self.outboundByteCount, max(maxBytes, 0))
        guard count > 0 else {
            self.releaseIdleBuffers()
            return []
        }
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { BIO_read(self.outbound, $0.baseAddress, Int32(clamping: $0.count)) }
        let taken = max(Int(read), 0)
        if taken < count { bytes.removeLast(count - taken) }
        self.outboundSinceFresh += taken
        self.releaseIdleBuffers()
        return bytes
    }

    // MARK: session

    public var isHandshakeComplete: Bool {
        if case .handshaking = self.phase { return false }
        if case .failed = self.phase { return false }
        return true
    }

    /// Drives the handshake. `read` and `write` call it too, so an explicit call is needed
    /// only to start a client's handshake (its ClientHello) before it has anything to write.
    public func handshake() throws(TLSError) -> TLSStatus {
        switch self.phase {
        case .established, .closedByPeer: return .complete
        case .failed(let error): throw error
        case .handshaking: break
        }
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(self.ssl)
        if result == 1 {
            try self.completeHandshake()
            return .complete
        }
        switch try self.classify(result) {
        case .read: return .needMoreBytes
        case .write: return .flushOutbound
        case .closeNotify:
            // close_notify during the handshake: the peer gave up before a session existed.
            throw self.fail(.protocolFailure("peer closed during handshake"))
        }
    }

    /// Decrypts the next application bytes (at most `maxBytes`).
    public func read(maxBytes: Int = 16 * 1024) throws(TLSError) -> TLSRead {
        switch self.phase {
        case .failed(let error): throw error
        case .closedByPeer: return .closed
        case .handshaking:
            switch try self.handshake() {
            case .complete: break
            case .needMoreBytes: return .needMoreBytes
            case .flushOutbound: return .flushOutbound
            }
        case .established: break
        }
        // Nothing buffered anywhere and more may come: OpenSSL would only say WANT_READ.
        if !self.endOfStream, BIO_ctrl_pending(self.inbound) == 0, SSL_has_pending(self.ssl) == 0 {
            self.releaseIdleBuffers()
            return .needMoreBytes
        }
        let capacity = max(maxBytes, 1)
        OpenSSLErrorQueue.clear()
        var count = 0
        var result: Int32 = 0
        let plaintext: [UInt8]? = withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { scratch in
            result = SSL_read_ex(self.ssl, scratch.baseAddress, capacity, &count)
            guard result == 1 else { return nil }
            return [UInt8](UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
        }
        if let plaintext {
            return .plaintext(plaintext)
        } else {
            switch try self.classify(result) {
            case .read:
                self.releaseIdleBuffers()
                return .needMoreBytes
            case .write:
                return .flushOutbound
            case .closeNotify:
                self.phase = .closedByPeer
                return .closed
            }
        }
    }

    /// Encrypts a prefix of `plaintext`. Partial: it takes at most what keeps the outbound
    /// ciphertext near `context.maxOutboundCiphertext` (and at least one record's worth), and
    /// answers `.flushOutbound` while that much is waiting.
    public func write(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) -> TLSWrite {
        switch self.phase {
        case .failed(let error): throw error
        case .handshaking:
            switch try self.handshake() {
            case .complete: break
            case .needMoreBytes: return .needMoreBytes
            case .flushOutbound: return .flushOutbound
            }
        case .established, .closedByPeer: break
        }
        guard !self.sentCloseNotify else { throw .closed }
        guard let base = plaintext.baseAddress, plaintext.count > 0 else { return .wrote(0) }
        let pending = self.outboundByteCount
        guard pending < self.context.maxOutboundCiphertext else { return .flushOutbound }
        let chunk = min(plaintext.count, max(self.context.maxOutboundCiphertext - pending, 16 * 1024))
        OpenSSLErrorQueue.clear()
        var written = 0
        if SSL_write_ex(self.ssl, base, chunk, &written) == 1 { return .wrote(written) }
        switch try self.classify(0) {
        case .read: return .needMoreBytes
        case .write: return .flushOutbound
        case .closeNotify: throw .closed
        }
    }

    public func write(_ plaintext: [UInt8]) throws(TLSError) -> TLSWrite {
        let result: Result<TLSWrite, TLSError> = plaintext.withUnsafeBytes { raw in
            do throws(TLSError) {
                return .success(try self.write(raw))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Sends close_notify (flush `takeOutbound()` afterwards, then shut the socket's write
    /// side). It does not wait for the peer's close_notify: `read` reports it when it comes.
    /// Before the handshake completes there is no session to close: nothing is sent.
    public func close() throws(TLSError) -> TLSStatus {
        switch self.phase {
        case .failed(let error): throw error
        case .handshaking:
            self.sentCloseNotify = true
            return .complete
        case .established, .closedByPeer: break
        }
        OpenSSLErrorQueue.clear()
        let result = SSL_shutdown(self.ssl)
        // 0: our close_notify is out, the peer's not yet seen; 1: both done.
        if result >= 0 {
            self.sentCloseNotify = true
            return .complete
        }
        switch try self.classify(result) {
        case .read: return .needMoreBytes
        case .write: return .flushOutbound
        case .closeNotify:
            self.sentCloseNotify = true
            return .complete
        }
    }

    // MARK: internals

    private func completeHandshake() throws(TLSError) {
        // The callback saw the leaf and recorded its identity; a missing one (no certificate
        // and yet no failure) is refused rather than trusted.
        let verified = SSL_get_verify_result(self.ssl) == Int(storesync_x509_v_ok()) && self.verification.failure == nil
        if let identity = self.verification.identity, verified {
            self.peerIdentity = identity
        } else if verified, self.context.side == .server, self.context.clientCertificates == .optionalForEnrollment,
                  SSL_get0_peer_certificate(self.ssl) == nil {
            // An enrolling device without a certificate: allowed, with no identity.
            self.peerIdentity = nil
        } else {
            throw self.fail(.verificationFailed(self.verification.failure ?? .noCertificate))
        }
        self.phase = .established
        // The handshake's flights grew both memory BIOs; swap them at the first idle moment.
        self.inboundSinceFresh = max(self.inboundSinceFresh, TLSEngine.freshBIOThreshold + 1)
        self.outboundSinceFresh = max(self.outboundSinceFresh, TLSEngine.freshBIOThreshold + 1)
        self.releaseIdleBuffers()
    }

    private enum Wait {
        case read, write, closeNotify
    }

    /// Reads SSL_get_error right after the failed call; a fatal error kills the engine.
    private func classify(_ result: Int32) throws(TLSError) -> Wait {
        let code = SSL_get_error(self.ssl, result)
        switch code {
        case storesync_ssl_error_want_read():
            if self.endOfStream { throw self.fail(.peerClosedWithoutCloseNotify) }
            return .read
        case storesync_ssl_error_want_write():
            return .write
        case storesync_ssl_error_zero_return():
            return .closeNotify
        default:
            throw self.fail(self.translate(code))
        }
    }

    private func fail(_ error: TLSError) -> TLSError {
        self.phase = .failed(error)
        return error
    }

    /// Names a fatal error: first what our verification refused, then what OpenSSL queued.
    private func translate(_ code: Int32) -> TLSError {
        let queued = OpenSSLErrorQueue.drain()
        if let failure = self.verification.failure { return .verificationFailed(failure) }
        if let (packed, reason) = queued {
            if storesync_err_lib(packed) == storesync_err_lib_ssl() {
                let reasonCode = storesync_err_reason(packed)
                let alertOffset = storesync_ssl_alert_reason_offset()
                switch reasonCode {
                case storesync_reason_no_peer_certificate():
                    return .verificationFailed(.noCertificate)
                case storesync_reason_unexpected_eof():
                    return .peerClosedWithoutCloseNotify
                case storesync_reason_unsupported_protocol():
                    return .protocolVersionRefused
                case storesync_reason_certificate_verify_failed():
                    return .verificationFailed(VerificationFailure(x509Error: Int32(truncatingIfNeeded: SSL_get_verify_result(self.ssl))))
                case alertOffset..<(alertOffset + 256):
                    let alert = TLSAlert(code: UInt8(reasonCode - alertOffset))
                    return alert == .protocolVersion ? .protocolVersionRefused : .peerRefused(alert)
                default:
                    break
                }
            }
            return .protocolFailure(reason)
        }
        if code == storesync_ssl_error_syscall(), self.endOfStream { return .peerClosedWithoutCloseNotify }
        return .protocolFailure("SSL error \(code)")
    }

    /// A memory BIO keeps the largest buffer it ever needed; once drained after real traffic,
    /// it is swapped for a fresh one so an idle session costs little (OpenSSL's own record
    /// buffers are released by SSL_MODE_RELEASE_BUFFERS).
    private func releaseIdleBuffers() {
        guard case .established = self.phase else { return }
        if self.inboundSinceFresh > TLSEngine.freshBIOThreshold, !self.endOfStream,
           BIO_ctrl_pending(self.inbound) == 0, let fresh = TLSEngine.newMemoryBIO() {
            SSL_set0_rbio(self.ssl, fresh)  // frees the old one
            self.inbound = fresh
            self.inboundSinceFresh = 0
        }
        if self.outboundSinceFresh > TLSEngine.freshBIOThreshold,
           BIO_ctrl_pending(self.outbound) == 0, let fresh = TLSEngine.newMemoryBIO() {
            SSL_set0_wbio(self.ssl, fresh)
            self.outbound = fresh
            self.outboundSinceFresh = 0
        }
    }
}
