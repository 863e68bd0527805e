import COpenSSL
import Foundation

/// An X.509 certificate (an `X509`), owned by this object and freed in `deinit`.
///
/// `@unchecked Sendable`: never mutated after creation; OpenSSL 3 guards the lazily cached
/// extension data of a constant `X509` with its own lock, so reading from several threads is safe.
public final class Certificate: @unchecked Sendable, Equatable {
    package let pointer: OpaquePointer

    /// Takes ownership of one reference to `pointer`.
    package init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Shares `pointer` (a borrowed `get0` result): takes a reference of its own.
    package init(copying pointer: OpaquePointer) {
        X509_up_ref(pointer)
        self.pointer = pointer
    }

    deinit {
        X509_free(self.pointer)
    }

    public static func == (lhs: Certificate, rhs: Certificate) -> Bool {
        X509_cmp(lhs.pointer, rhs.pointer) == 0
    }

    // MARK: encodings

    /// The first certificate of a PEM text.
    public convenience init(pem: String) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let cert = withReadOnlyBIO(Array(pem.utf8)) { bio in PEM_read_bio_X509(bio, nil, nil, nil) }
        guard let cert else { throw CryptoError.openSSL(.decoding, "PEM_read_bio_X509") }
        self.init(taking: cert)
    }

    public convenience init(pemFile path: String) throws(CryptoError) {
        try self.init(pem: try readTextFile(path))
    }

    public convenience init(der: [UInt8]) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let cert = der.withUnsafeBytes { raw -> OpaquePointer? in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
            var cursor: UnsafePointer<UInt8>? = base
            return d2i_X509(nil, &cursor, raw.count)
        }
        guard let cert else { throw CryptoError.openSSL(.decoding, "d2i_X509") }
        self.init(taking: cert)
    }

    /// Every certificate of a PEM text, in order (a chain file). At least one is required.
    public static func all(pem: String) throws(CryptoError) -> [Certificate] {
        OpenSSLErrorQueue.clear()
        let pointers: [OpaquePointer] = withReadOnlyBIO(Array(pem.utf8)) { bio in
            var found: [OpaquePointer] = []
            while let cert = PEM_read_bio_X509(bio, nil, nil, nil) { found.append(cert) }
            return found
        } ?? []
        // The read that ends the loop leaves "no start line" in the queue: expected, not an error.
        OpenSSLErrorQueue.clear()
        guard !pointers.isEmpty else { throw CryptoError(.decoding, "PEM_read_bio_X509", reason: "no certificate") }
        return pointers.map { Certificate(taking: $0) }
    }

    public func pem() throws(CryptoError) -> String {
        OpenSSLErrorQueue.clear()
        guard let bytes = collectingBIO({ PEM_write_bio_X509($0, self.pointer) == 1 }) else {
            throw CryptoError.openSSL(.encoding, "PEM_write_bio_X509")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func der() throws(CryptoError) -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let bytes = collectingBIO({ i2d_X509_bio($0, self.pointer) == 1 }) else {
            throw CryptoError.openSSL(.encoding, "i2d_X509_bio")
        }
        return bytes
    }

    /// Writes the PEM to `path` (mode 0644: a certificate is public), atomically.
    public func write(toFile path: String) throws(CryptoError) {
        try writeFileAtomically(path, Array(try self.pem().utf8), mode: 0o644)
    }

    /// SHA-256 of the DER encoding, 64 lowercase hex digits (what `openssl x509 -fingerprint
    /// -sha256` prints, without colons, in lowercase).
    public func fingerprint() throws(CryptoError) -> String {
        OpenSSLErrorQueue.clear()
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer { X509_digest(self.pointer, EVP_sha256(), $0.baseAddress, &length) }
        guard ok == 1, length == 32 else { throw CryptoError.openSSL(.digest, "X509_digest") }
        return hexString(digest.prefix(32))
    }

    // MARK: fields

    public var notBefore: Date? { asn1Date(X509_get0_notBefore(self.pointer)) }
    public var notAfter: Date? { asn1Date(X509_get0_notAfter(self.pointer)) }

    /// The subject's common name when there is exactly one; nil otherwise.
    public var commonName: String? {
        guard let name = X509_get_subject_name(self.pointer) else { return nil }
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, X509_NAME_get_index_by_NID(name, NID_commonName, index) < 0,
              let entry = X509_NAME_get_entry(name, index),
              let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { storesync_openssl_free(utf8) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    /// The serial as a StoreSync serial: nil if negative, zero, or longer than 128 bits.
    public var serial: CertificateSerial? {
        guard let integer = X509_get0_serialNumber(self.pointer),
              let bignum = ASN1_INTEGER_to_BN(integer, nil) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        defer { BN_free(bignum) }
        guard BN_is_negative(bignum) == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        let written = bytes.withUnsafeMutableBufferPointer { BN_bn2binpad(bignum, $0.baseAddress, 16) }
        guard written == 16 else { return nil }
        return CertificateSerial(bytes: bytes)
    }

    /// True when basicConstraints says CA (or the certificate is a v1 self-signed root).
    public var isCA: Bool { X509_check_ca(self.pointer) != 0 }

    // MARK: identity

    /// The StoreSync identity carried by this certificate. Refuses a certificate that lacks a
    /// field, carries one twice, carries an unknown `urn:storesync:` URI, pairs a role with
    /// another role's scope, has no single common name, a non-StoreSync serial, or is a CA.
    /// It does not verify the signature: use `verify(trusting:at:)` (or the TLS handshake) first.
    public func identity() throws(IdentityError) -> DeviceIdentity {
        guard !self.isCA else { throw .malformedField("basicConstraints") }
        guard storesync_x509_extension_count(self.pointer, NID_subject_alt_name) <= 1 else {
            throw .duplicateSubjectAltName
        }
        var critical: Int32 = 0
        guard let names = storesync_x509_subject_alt_names(self.pointer, &critical) else {
            OpenSSLErrorQueue.clear()
            throw critical == -1 ? .missingSubjectAltName : .unreadable("subjectAltName")
        }
        defer { storesync_general_names_free(names) }

        var roles: [String] = []
        var scopes: [String] = []
        var replicas: [String] = []
        for index in 0..<storesync_general_names_count(names) {
            var data: UnsafePointer<UInt8>?
            var length: Int32 = 0
            let type = storesync_general_name_at(names, index, &data, &length)
            guard type == storesync_gen_uri(), let data, length >= 0 else { continue }
            let bytes = UnsafeBufferPointer(start: data, count: Int(length))
            // IA5String: ASCII only. Anything else cannot be one of ours and is left alone.
            guard bytes.allSatisfy({ $0 < 0x80 }) else { continue }
            let uri = String(decoding: bytes, as: UTF8.self)
            if uri.hasPrefix(StoreSyncURI.rolePrefix) {
                roles.append(String(uri.dropFirst(StoreSyncURI.rolePrefix.count)))
            } else if uri.hasPrefix(StoreSyncURI.scopePrefix) {
                scopes.append(String(uri.dropFirst(StoreSyncURI.scopePrefix.count)))
            } else if uri.hasPrefix(StoreSyncURI.replicaPrefix) {
                replicas.append(String(uri.dropFirst(StoreSyncURI.replicaPrefix.count)))
            } else if uri.lowercased().hasPrefix(StoreSyncURI.namespace) {
                throw .unknownStoreSyncURI
            }
        }
        func single(_ values: [String], _ field: String) throws(IdentityError) -> String {
            guard let first = values.first else { throw .missingField(field) }
            guard values.count == 1 else { throw .duplicateField(field) }
            return first
        }
        guard let role = DeviceRole(rawValue: try single(roles, "role")) else { throw .malformedField("role") }
        guard let scope = DeviceScope(try single(scopes, "scope")) else { throw .malformedField("scope") }
        let replicaText = try single(replicas, "replica")
        guard replicaText.utf8.count == 32, replicaText == replicaText.lowercased(),
              let replicaID = bytesFromHex(replicaText) else { throw .malformedField("replica") }
        guard scope.role == role else { throw .roleScopeMismatch }
        guard let name = self.commonName, isValidDeviceName(name) else { throw .missingCommonName }
        guard let serial = self.serial else { throw .serialNotIssuedByStoreSync }
        guard let notBefore = self.notBefore, let notAfter = self.notAfter else { throw .unreadable("validity") }
        let fingerprint: String
        do {
            fingerprint = try self.fingerprint()
        } catch {
            throw .unreadable("fingerprint")
        }
        return DeviceIdentity(
            role: role, scope: scope, replicaID: replicaID, serial: serial, name: name,
            notBefore: notBefore, notAfter: notAfter, fingerprint: fingerprint)
    }

    // MARK: verification

    /// Verifies the chain from this certificate to one of `roots` (signatures, CA constraints)
    /// and that every certificate on it is valid at `time`.
    public func verify(trusting roots: [Certificate], at time: Date = Date()) throws(VerificationFailure) {
        OpenSSLErrorQueue.clear()
        guard let store = X509_STORE_new() else { throw .other(code: -1, reason: "out of memory") }
        defer { X509_STORE_free(store) }
        for root in roots {
            // X509_STORE_add_cert takes its own reference.
            guard X509_STORE_add_cert(store, root.pointer) == 1 else { throw .other(code: -1, reason: "cannot add CA") }
        }
        guard let context = X509_STORE_CTX_new() else { throw .other(code: -1, reason: "out of memory") }
        defer { X509_STORE_CTX_free(context) }
        guard X509_STORE_CTX_init(context, store, self.pointer, nil) == 1 else {
            OpenSSLErrorQueue.clear()
            throw .other(code: -1, reason: "cannot start verification")
        }
        X509_STORE_CTX_set_time(context, 0, time_t(time.timeIntervalSince1970.rounded(.down)))
        let ok = X509_verify_cert(context)
        OpenSSLErrorQueue.clear()
        guard ok == 1 else { throw VerificationFailure(x509Error: X509_STORE_CTX_get_error(context)) }
    }
}

extension VerificationFailure {
    /// Maps OpenSSL's X509_V_ERR_* code to the failure it names.
    package init(x509Error code: Int32) {
        switch code {
        case storesync_x509_v_err_cert_has_expired(): self = .expired
        case storesync_x509_v_err_cert_not_yet_valid(): self = .notYetValid
        case storesync_x509_v_err_cert_revoked(): self = .revoked
        case storesync_x509_v_err_depth_zero_self_signed(): self = .selfSigned
        case storesync_x509_v_err_unable_to_get_issuer_locally(), storesync_x509_v_err_unable_to_get_issuer(),
             storesync_x509_v_err_unable_to_verify_leaf(), storesync_x509_v_err_self_signed_in_chain():
            self = .unknownIssuer
        case storesync_x509_v_err_cert_signature_failure(): self = .badSignature
        default:
            let text = X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "unknown"
            self = .other(code: code, reason: text)
        }
    }
}

/// A device name (the subject CN): 1–64 UTF-8 bytes, no control characters.
package func isValidDeviceName(_ name: String) -> Bool {
    (1...64).contains(name.utf8.count) && !name.unicodeScalars.contains { $0.properties.generalCategory == .control }
}

private func asn1Date(_ time: UnsafePointer<ASN1_TIME>?) -> Date? {
    guard let time else { return nil }
    var parts = tm()
    guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
    return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
}
