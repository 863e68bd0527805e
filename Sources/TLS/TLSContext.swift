import COpenSSL
import Crypto

/// A node's TLS configuration (an `SSL_CTX`), made once and shared by all its connections.
///
/// TLS 1.3 only; the peer must present a certificate that chains to `chainCA`, carries a
/// StoreSync identity (see CERTIFICATES.md) with a role in `acceptedPeerRoles`, and is not
/// refused by `isRevoked`. No session tickets and no session cache: every connection is a full
/// handshake, so revocation is checked on each one, and the context holds no per-peer state.
///
/// `@unchecked Sendable`: every property is immutable after `init`, and OpenSSL allows one
/// configured `SSL_CTX` to create sessions from many threads at once.
public final class TLSContext: @unchecked Sendable {
    public enum Side: Sendable {
        /// Accepts connections (a hub): demands a client certificate.
        case server
        /// Dials (a terminal, a regional hub towards HQ, an analyst).
        case client
    }

    /// Whether a server demands a client certificate.
    public enum ClientCertificates: Sendable {
        /// Every link but enrollment: no certificate, no session (certificate_required).
        case required
        /// An enrollment listener: a device with no certificate yet may connect (its engine's
        /// `peerIdentity` stays nil and the session may only enroll); a certificate that is
        /// presented is still verified in full.
        case optionalForEnrollment
    }

    /// What a node trusts to verify its peer.
    enum Trust {
        case chainCA(Certificate)
        /// Enrollment: the chain CA is known only by its SHA-256 fingerprint (from the token).
        case pinnedCA(fingerprint: String)
    }

    /// Protocol versions; only tests use anything but TLS 1.3 (to prove a TLS 1.2 peer fails).
    enum Versions {
        case tls13Only
        case tls12OnlyForTesting
    }

    public let side: Side
    /// This node's certificate (nil only in tests of a client that presents none).
    public let certificate: Certificate?
    /// The chain CA (nil for an enrollment client, which knows only its fingerprint).
    public let chainCA: Certificate?
    public let clientCertificates: ClientCertificates
    let pinnedCAFingerprint: String?
    public let acceptedPeerRoles: Set<DeviceRole>
    /// Called with the peer's serial (its device id) during every handshake, after the chain
    /// and identity checked out; true refuses the peer with certificate_revoked. It runs on the
    /// thread driving the engine, so it must be quick (a lookup in a locked set).
    public let isRevoked: (@Sendable (CertificateSerial) -> Bool)?
    /// Ciphertext an engine holds for the caller before `write` answers "flush and come back".
    public let maxOutboundCiphertext: Int

    let pointer: OpaquePointer

    /// - Parameters:
    ///   - acceptedPeerRoles: defaults to hub and hq for a client (a device only ever dials a
    ///     hub, so a terminal's stolen certificate cannot impersonate one), every role for a server.
    public convenience init(
        side: Side,
        certificate: Certificate,
        privateKey: PrivateKey,
        chainCA: Certificate,
        acceptedPeerRoles: Set<DeviceRole>? = nil,
        isRevoked: (@Sendable (CertificateSerial) -> Bool)? = nil,
        clientCertificates: ClientCertificates = .required,
        maxOutboundCiphertext: Int = 64 * 1024
    ) throws(TLSError) {
        try self.init(
            side: side, certificate: certificate, privateKey: privateKey, trust: .chainCA(chainCA),
            clientCertificates: clientCertificates, acceptedPeerRoles: acceptedPeerRoles, isRevoked: isRevoked,
            maxOutboundCiphertext: maxOutboundCiphertext, versions: .tls13Only)
    }

    /// A client for enrollment: it has no certificate yet and knows the chain only by the CA's
    /// SHA-256 fingerprint (64 hex digits, from the enrollment token). Every server context sends
    /// the chain CA after its own certificate; this client accepts the hub only if one of the
    /// certificates sent is a CA with exactly that fingerprint and the hub's certificate
    /// verifies against it (signature, validity, identity, role hub or hq). After the handshake,
    /// `TLSEngine.enrollmentCA` is that CA: the device stores it as its chain CA file.
    public static func enrollmentClient(pinnedCAFingerprint: String) throws(TLSError) -> TLSContext {
        let pin = pinnedCAFingerprint.lowercased()
        guard pin.utf8.count == 64, pin.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw .configuration("the CA fingerprint must be 64 hex digits")
        }
        return try TLSContext(
            side: .client, certificate: nil, privateKey: nil, trust: .pinnedCA(fingerprint: pin),
            clientCertificates: .required, acceptedPeerRoles: nil, isRevoked: nil,
            maxOutboundCiphertext: 64 * 1024, versions: .tls13Only)
    }

    /// Reads the three PEM credential files (certificate, private key, chain CA).
    public convenience init(
        side: Side,
        certificateFile: String,
        privateKeyFile: String,
        chainCAFile: String,
        acceptedPeerRoles: Set<DeviceRole>? = nil,
        isRevoked: (@Sendable (CertificateSerial) -> Bool)? = nil,
        clientCertificates: ClientCertificates = .required
    ) throws(TLSError) {
        let certificate: Certificate
        let key: PrivateKey
        let ca: Certificate
        do {
            certificate = try Certificate(pemFile: certificateFile)
            key = try PrivateKey(pemFile: privateKeyFile)
            ca = try Certificate(pemFile: chainCAFile)
        } catch {
            throw .configuration("cannot read credentials: \(error)")
        }
        try self.init(
            side: side, certificate: certificate, privateKey: key, chainCA: ca,
            acceptedPeerRoles: acceptedPeerRoles, isRevoked: isRevoked, clientCertificates: clientCertificates)
    }

    init(
        side: Side,
        certificate: Certificate?,
        privateKey: PrivateKey?,
        trust: Trust,
        clientCertificates: ClientCertificates,
        acceptedPeerRoles: Set<DeviceRole>?,
        isRevoked: (@Sendable (CertificateSerial) -> Bool)?,
        maxOutboundCiphertext: Int,
        versions: Versions
    ) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        let method = side == .server ? TLS_server_method() : TLS_client_method()
        guard let context = SSL_CTX_new(method) else { throw .outOfMemory("SSL_CTX_new") }
        // Owned from here: freed by deinit, which also runs if a later step throws.
        self.pointer = context
        self.side = side
        self.certificate = certificate
        switch trust {
        case .chainCA(let ca):
            self.chainCA = ca
            self.pinnedCAFingerprint = nil
        case .pinnedCA(let fingerprint):
            self.chainCA = nil
            self.pinnedCAFingerprint = fingerprint
        }
        self.clientCertificates = clientCertificates
        self.acceptedPeerRoles = acceptedPeerRoles ?? (side == .client ? [.hub, .hq] : Set(DeviceRole.allCases))
        self.isRevoked = isRevoked
        self.maxOutboundCiphertext = max(maxOutboundCiphertext, 1)

        let versionsSet: Int32
        switch versions {
        case .tls13Only: versionsSet = storesync_ctx_set_tls13_only(context)
        case .tls12OnlyForTesting: versionsSet = storesync_ctx_set_tls12_only(context)
        }
        guard versionsSet == 1 else { throw TLSContext.failure("cannot restrict protocol versions") }
        storesync_ctx_set_modes(context)
        guard storesync_ctx_disable_resumption(context) == 1 else { throw TLSContext.failure("cannot disable session tickets") }
        // use_certificate / use_PrivateKey / add_cert take references of their own.
        if let certificate, let privateKey {
            guard SSL_CTX_use_certificate(context, certificate.pointer) == 1 else { throw TLSContext.failure("certificate refused") }
            guard SSL_CTX_use_PrivateKey(context, privateKey.pointer) == 1 else { throw TLSContext.failure("private key refused") }
            guard SSL_CTX_check_private_key(context) == 1 else { throw TLSContext.failure("private key does not match certificate") }
        } else if side == .server || certificate != nil || privateKey != nil {
            throw .configuration("a certificate and its private key are required")
        }
        if let chainCA = self.chainCA {
            guard let store = SSL_CTX_get_cert_store(context), X509_STORE_add_cert(store, chainCA.pointer) == 1 else {
                throw TLSContext.failure("cannot trust the chain CA")
            }
            if side == .server {
                // Names the CA in the CertificateRequest, so a client holding several (e.g.
                // Python's ssl) picks the right certificate.
                guard SSL_CTX_add_client_CA(context, chainCA.pointer) == 1 else { throw TLSContext.failure("cannot name the client CA") }
            }
            if certificate != nil {
                // The CA follows our certificate so that an enrolling device, which knows only
                // the CA's fingerprint, can find it and verify us (about 0.5 KB per handshake).
                guard storesync_ctx_add1_chain_cert(context, chainCA.pointer) == 1 else { throw TLSContext.failure("cannot send the chain CA") }
            }
        } else {
            // Pinned: OpenSSL's chain building has no anchor; our callback verifies instead.
            SSL_CTX_set_cert_verify_callback(context, pinnedChainCallback, nil)
        }
        let demand = side == .server && clientCertificates == .optionalForEnrollment
            ? storesync_verify_peer_optional() : storesync_verify_peer_required()
        SSL_CTX_set_verify(context, demand, verifyPeerCallback)
        OpenSSLErrorQueue.clear()
    }

    deinit {
        SSL_CTX_free(self.pointer)
    }

    private static func failure(_ what: String) -> TLSError {
        let reason = OpenSSLErrorQueue.drain()?.reason
        return .configuration(reason.map { "\(what): \($0)" } ?? what)
    }
}

/// The verification callback of every context. OpenSSL calls it once per certificate of the
/// peer's chain (root first, leaf last) with its own verdict; the engine's `PeerVerification`
/// (reached through the SSL's app data) adds the StoreSync checks at the leaf.
private func verifyPeerCallback(_ preverified: Int32, _ store: OpaquePointer?) -> Int32 {
    guard let store,
          let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let state = SSL_get_ex_data(OpaquePointer(ssl), 0) else { return 0 }
    let verification = Unmanaged<PeerVerification>.fromOpaque(state).takeUnretainedValue()
    return verification.check(preverified: preverified == 1, store: store) ? 1 : 0
}

/// Replaces OpenSSL's chain verification for an enrollment client (pinned CA fingerprint).
private func pinnedChainCallback(_ store: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let store,
          let ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
          let state = SSL_get_ex_data(OpaquePointer(ssl), 0) else { return 0 }
    let verification = Unmanaged<PeerVerification>.fromOpaque(state).takeUnretainedValue()
    return verification.checkPinned(store: store) ? 1 : 0
}

/// What one engine learned while verifying its peer. Only the engine's thread touches it
/// (OpenSSL calls the callback synchronously inside the engine's own SSL call).
final class PeerVerification {
    let acceptedRoles: Set<DeviceRole>
    let isRevoked: (@Sendable (CertificateSerial) -> Bool)?
    let pinnedCAFingerprint: String?
    /// The first reason this side refused the peer.
    var failure: VerificationFailure?
    var identity: DeviceIdentity?
    /// The CA that matched the pin (enrollment clients).
    var pinnedCA: Certificate?

    init(context: TLSContext) {
        self.acceptedRoles = context.acceptedPeerRoles
        self.isRevoked = context.isRevoked
        self.pinnedCAFingerprint = context.pinnedCAFingerprint
    }

    /// Enrollment client: find the pinned CA among the certificates the peer sent, verify the
    /// leaf against it with OpenSSL's X509_verify_cert, then the StoreSync checks.
    func checkPinned(store: OpaquePointer) -> Bool {
        guard let pin = self.pinnedCAFingerprint, let leafPointer = X509_STORE_CTX_get0_cert(store) else {
            self.refuse(.noCertificate, store: store, code: storesync_x509_v_err_application_verification())
            return false
        }
        let leaf = Certificate(copying: leafPointer)
        let sent = X509_STORE_CTX_get0_untrusted(store)
        var anchor: Certificate?
        for index in 0..<storesync_x509_stack_count(sent) {
            guard let pointer = storesync_x509_stack_at(sent, index) else { continue }
            let candidate = Certificate(copying: pointer)
            if candidate.isCA, (try? candidate.fingerprint()) == pin {
                anchor = candidate
                break
            }
        }
        guard let anchor else {
            self.refuse(.unknownIssuer, store: store, code: storesync_x509_v_err_unable_to_get_issuer_locally())
            return false
        }
        do {
            try leaf.verify(trusting: [anchor])
        } catch {
            self.refuse(error, store: store, code: error.x509Code)
            return false
        }
        guard self.acceptIdentity(of: leaf, store: store) else { return false }
        self.pinnedCA = anchor
        return true
    }

    func check(preverified: Bool, store: OpaquePointer) -> Bool {
        guard self.failure == nil else { return false }
        guard preverified else {
            self.failure = VerificationFailure(x509Error: X509_STORE_CTX_get_error(store))
            return false
        }
        guard X509_STORE_CTX_get_error_depth(store) == 0 else { return true }
        // get_current_cert is a borrowed (get0) pointer; Certificate(copying:) takes a reference.
        guard let current = X509_STORE_CTX_get_current_cert(store) else {
            self.refuse(.noCertificate, store: store, code: storesync_x509_v_err_application_verification())
            return false
        }
        return self.acceptIdentity(of: Certificate(copying: current), store: store)
    }

    /// The StoreSync checks on a leaf whose chain verified: identity, role, revocation.
    private func acceptIdentity(of leaf: Certificate, store: OpaquePointer) -> Bool {
        let identity: DeviceIdentity
        do {
            identity = try leaf.identity()
        } catch {
            self.refuse(.badIdentity(error), store: store, code: storesync_x509_v_err_application_verification())
            return false
        }
        guard self.acceptedRoles.contains(identity.role) else {
            self.refuse(.roleNotAccepted(identity.role), store: store, code: storesync_x509_v_err_application_verification())
            return false
        }
        if let isRevoked = self.isRevoked, isRevoked(identity.serial) {
            self.refuse(.revoked, store: store, code: storesync_x509_v_err_cert_revoked())
            return false
        }
        self.identity = identity
        return true
    }

    /// Records why, and sets the X.509 error that picks the alert OpenSSL sends the peer
    /// (certificate_revoked for a revocation, handshake_failure otherwise).
    private func refuse(_ failure: VerificationFailure, store: OpaquePointer, code: Int32) {
        self.failure = failure
        X509_STORE_CTX_set_error(store, code)
    }
}

extension VerificationFailure {
    /// The X509_V_ERR_* code that makes OpenSSL send the matching alert.
    var x509Code: Int32 {
        switch self {
        case .expired: return storesync_x509_v_err_cert_has_expired()
        case .notYetValid: return storesync_x509_v_err_cert_not_yet_valid()
        case .revoked: return storesync_x509_v_err_cert_revoked()
        case .selfSigned: return storesync_x509_v_err_depth_zero_self_signed()
        case .unknownIssuer: return storesync_x509_v_err_unable_to_get_issuer_locally()
        case .badSignature: return storesync_x509_v_err_cert_signature_failure()
        case .other(let code, _): return code
        case .noCertificate, .badIdentity, .roleNotAccepted: return storesync_x509_v_err_application_verification()
        }
    }
}
