import COpenSSL

/// A PKCS#10 certificate signing request (an `X509_REQ`), owned by this object.
///
/// The device makes it from its own key, so the private key never leaves the device; the CA
/// takes only the public key from it (after checking the request's signature, which proves the
/// device holds the key). The subject and every extension in the issued certificate come from
/// the CA's side (the enrollment token), never from the request.
public final class CertificateRequest: @unchecked Sendable {
    package let pointer: OpaquePointer

    package init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        X509_REQ_free(self.pointer)
    }

    /// A request for `key`'s public half with subject CN = `commonName`, signed with `key`.
    public convenience init(key: PrivateKey, commonName: String) throws(CryptoError) {
        guard isValidDeviceName(commonName) else {
            throw CryptoError(.invalidArgument, "X509_REQ", reason: "common name must be 1-64 UTF-8 bytes without control characters")
        }
        OpenSSLErrorQueue.clear()
        guard let request = X509_REQ_new() else { throw CryptoError.openSSL(.outOfMemory, "X509_REQ_new") }
        self.init(taking: request)
        guard X509_REQ_set_version(request, 0) == 1 else { throw CryptoError.openSSL(.encoding, "X509_REQ_set_version") }
        guard let name = X509_NAME_new() else { throw CryptoError.openSSL(.outOfMemory, "X509_NAME_new") }
        defer { X509_NAME_free(name) }
        guard addCommonName(name, commonName) else { throw CryptoError.openSSL(.encoding, "X509_NAME_add_entry_by_NID") }
        guard X509_REQ_set_subject_name(request, name) == 1 else { throw CryptoError.openSSL(.encoding, "X509_REQ_set_subject_name") }
        guard X509_REQ_set_pubkey(request, key.pointer) == 1 else { throw CryptoError.openSSL(.encoding, "X509_REQ_set_pubkey") }
        guard X509_REQ_sign(request, key.pointer, EVP_sha256()) > 0 else { throw CryptoError.openSSL(.signing, "X509_REQ_sign") }
    }

    public convenience init(pem: String) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let request = withReadOnlyBIO(Array(pem.utf8)) { PEM_read_bio_X509_REQ($0, nil, nil, nil) }
        guard let request else { throw CryptoError.openSSL(.decoding, "PEM_read_bio_X509_REQ") }
        self.init(taking: request)
    }

    public func pem() throws(CryptoError) -> String {
        OpenSSLErrorQueue.clear()
        guard let bytes = collectingBIO({ PEM_write_bio_X509_REQ($0, self.pointer) == 1 }) else {
            throw CryptoError.openSSL(.encoding, "PEM_write_bio_X509_REQ")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// True when the request is signed by the key it carries (proof of possession).
    public var hasValidSignature: Bool {
        OpenSSLErrorQueue.clear()
        guard let key = X509_REQ_get0_pubkey(self.pointer) else {
            OpenSSLErrorQueue.clear()
            return false
        }
        let ok = X509_REQ_verify(self.pointer, key) == 1
        OpenSSLErrorQueue.clear()
        return ok
    }

    /// The DER SubjectPublicKeyInfo of the requested key.
    public func publicKeyDER() throws(CryptoError) -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let key = X509_REQ_get0_pubkey(self.pointer),
              let bytes = collectingBIO({ i2d_PUBKEY_bio($0, key) == 1 }) else {
            throw CryptoError.openSSL(.decoding, "X509_REQ_get0_pubkey")
        }
        return bytes
    }
}

/// Adds CN = `value` (UTF8String) to `name`.
package func addCommonName(_ name: OpaquePointer, _ value: String) -> Bool {
    let bytes = Array(value.utf8)
    return bytes.withUnsafeBufferPointer { buffer in
        X509_NAME_add_entry_by_NID(name, NID_commonName, storesync_mbstring_utf8(), buffer.baseAddress, Int32(buffer.count), -1, 0) == 1
    }
}
