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

    /// Protocol versions; only tests use anything but TLS 1.3 (to prove a TLS 1.2 peer fails).
    enum Versions {
        case tls13Only
        case tls12OnlyForTesting
    }

    public let side: Side
    /// This node's certificate (nil only in tests of a client that presents none).
    public let certificate: Certificate?
    public let chainCA: Certificate
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
        maxOutboundCiphertext: Int = 64 * 1024
    ) throws(TLSError) {
        try self.init(
            side: side, certificate: certificate, privateKey: privateKey, chainCA: chainCA,
            acceptedPeerRoles: acceptedPeerRoles, isRevoked: isRevoked,
            maxOutboundCiphertext: maxOutboundCiphertext, versions: .tls13Only)
    }

    /// Reads the three PEM credential files (certificate, private key, chain CA).
    public convenience init(
        side: Side,
        certificateFile: String,
        privateKeyFile: String,
        chainCAFile: String,
        acceptedPeerRoles: Set<DeviceRole>? = nil,
        isRevoked: (@Sendable (CertificateSerial) -> Bool)? = nil
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
            acceptedPeerRoles: acceptedPeerRoles, isRevoked: isRevoked)
    }

    init(
        side: Side,
        certificate: Certificate?,
        privateKey: PrivateKey?,
        chainCA: Certificate,
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
        self.chainCA = chainCA
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
        guard let store = SSL_CTX_get_cert_store(context), X509_STORE_add_cert(store, chainCA.pointer) == 1 else {
            throw TLSContext.failure("cannot trust the chain CA")
        }
        if side == .server {
            // Names the CA in the CertificateRequest, so a client holding several (e.g.
            // Python's ssl) picks the right certificate.
            guard SSL_CTX_add_client_CA(context, chainCA.pointer) == 1 else { throw TLSContext.failure("cannot name the client CA") }
        }
        SSL_CTX_set_verify(context, storesync_verify_peer_required(), verifyPeerCallback)
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

/// What one engine learned while verifying its peer. Only the engine's thread touches it
/// (OpenSSL calls the callback synchronously inside the engine's own SSL call).
final class PeerVerification {
    let acceptedRoles: Set<DeviceRole>
    let isRevoked: (@Sendable (CertificateSerial) -> Bool)?
    /// The first reason this side refused the peer.
    var failure: VerificationFailure?
    var identity: DeviceIdentity?

    init(acceptedRoles: Set<DeviceRole>, isRevoked: (@Sendable (CertificateSerial) -> Bool)?) {
        self.acceptedRoles = acceptedRoles
        self.isRevoked = isRevoked
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
        let identity: DeviceIdentity
        do {
            identity = try Certificate(copying: current).identity()
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
