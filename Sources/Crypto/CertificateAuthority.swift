import COpenSSL
import Foundation

/// The chain's private CA: a self-signed root certificate and its key (kept at HQ, beside the
/// replica, never replicated). It issues device certificates from requests.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let key: PrivateKey

    /// Pairs a CA certificate with its key; refuses a key that is not the certificate's or a
    /// certificate that is not a CA.
    public init(certificate: Certificate, key: PrivateKey) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        guard X509_check_private_key(certificate.pointer, key.pointer) == 1 else {
            OpenSSLErrorQueue.clear()
            throw CryptoError(.invalidArgument, "X509_check_private_key", reason: "key does not match the CA certificate")
        }
        guard certificate.isCA else {
            throw CryptoError(.invalidArgument, "X509_check_ca", reason: "certificate is not a CA")
        }
        self.certificate = certificate
        self.key = key
    }

    /// A new self-signed root: subject = issuer = CN `commonName`, random 128-bit serial,
    /// basicConstraints critical CA:TRUE, keyUsage critical keyCertSign+cRLSign,
    /// subjectKeyIdentifier, signed ECDSA-SHA256 with `key`.
    public static func createRoot(
        commonName: String, key: PrivateKey, notBefore: Date, notAfter: Date
    ) throws(CryptoError) -> CertificateAuthority {
        let certificate = try buildCertificate(
            commonName: commonName, publicKey: key.pointer, issuer: nil, signingKey: key,
            serial: try CertificateSerial.random(), notBefore: notBefore, notAfter: notAfter,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE"),
                (NID_key_usage, "critical,keyCertSign,cRLSign"),
                (NID_subject_key_identifier, "hash"),
            ])
        return try CertificateAuthority(certificate: certificate, key: key)
    }

    /// Issues a device certificate for the key in `request`.
    ///
    /// Subject CN = `name`; serial = `serial` (random by default; it is the device id);
    /// validity `notBefore`…`notAfter`; subjectAltName URIs `urn:storesync:role:…`,
    /// `urn:storesync:scope:…`, `urn:storesync:replica:…`; basicConstraints critical CA:FALSE;
    /// keyUsage critical digitalSignature; extendedKeyUsage clientAuth+serverAuth; key
    /// identifiers. Nothing is copied from the request but its public key, and only after its
    /// signature checks out.
    public func issue(
        request: CertificateRequest,
        name: String,
        role: DeviceRole,
        scope: DeviceScope,
        replicaID: [UInt8],
        notBefore: Date,
        notAfter: Date,
        serial: CertificateSerial? = nil
    ) throws(CryptoError) -> Certificate {
        guard scope.role == role else {
            throw CryptoError(.invalidArgument, "issue", reason: "scope \(scope) does not belong to role \(role.rawValue)")
        }
        guard replicaID.count == 16 else { throw CryptoError(.invalidArgument, "issue", reason: "replica id must be 16 bytes") }
        return try self.issue(
            request: request, name: name,
            uris: [StoreSyncURI.role(role), StoreSyncURI.scope(scope), StoreSyncURI.replica(replicaID)],
            notBefore: notBefore, notAfter: notAfter, serial: serial)
    }

    /// `issue` with the subjectAltName URIs given as they are: tests use it to make
    /// certificates that lack, duplicate or garble an identity field.
    package func issue(
        request: CertificateRequest,
        name: String,
        uris: [String],
        notBefore: Date,
        notAfter: Date,
        serial: CertificateSerial? = nil
    ) throws(CryptoError) -> Certificate {
        guard request.hasValidSignature else {
            throw CryptoError(.invalidArgument, "X509_REQ_verify", reason: "request signature invalid")
        }
        OpenSSLErrorQueue.clear()
        guard let publicKey = X509_REQ_get0_pubkey(request.pointer) else {
            throw CryptoError.openSSL(.decoding, "X509_REQ_get0_pubkey")
        }
        let chosenSerial: CertificateSerial
        if let serial {
            chosenSerial = serial
        } else {
            chosenSerial = try CertificateSerial.random()
        }
        return try buildCertificate(
            commonName: name, publicKey: publicKey, issuer: self.certificate, signingKey: self.key,
            serial: chosenSerial, notBefore: notBefore, notAfter: notAfter,
            extensions: deviceExtensions(uris: uris, authorityKeyID: true))
    }

    /// For tests only: a device certificate signed by its own key (a forged credential that
    /// carries a well-formed identity but chains to no CA).
    package static func selfSignedDevice(
        key: PrivateKey, name: String, role: DeviceRole, scope: DeviceScope, replicaID: [UInt8],
        notBefore: Date, notAfter: Date
    ) throws(CryptoError) -> Certificate {
        try buildCertificate(
            commonName: name, publicKey: key.pointer, issuer: nil, signingKey: key,
            serial: try CertificateSerial.random(), notBefore: notBefore, notAfter: notAfter,
            extensions: deviceExtensions(
                uris: [StoreSyncURI.role(role), StoreSyncURI.scope(scope), StoreSyncURI.replica(replicaID)],
                authorityKeyID: false))
    }
}

/// The extensions of every device certificate (see CERTIFICATES.md).
private func deviceExtensions(uris: [String], authorityKeyID: Bool) -> [(Int32, String)] {
    var extensions: [(Int32, String)] = [
        (NID_basic_constraints, "critical,CA:FALSE"),
        (NID_key_usage, "critical,digitalSignature"),
        (NID_ext_key_usage, "clientAuth,serverAuth"),
        (NID_subject_key_identifier, "hash"),
    ]
    if authorityKeyID { extensions.append((NID_authority_key_identifier, "keyid:always")) }
    if !uris.isEmpty {
        extensions.append((NID_subject_alt_name, uris.map { "URI:\($0)" }.joined(separator: ",")))
    }
    return extensions
}

/// Builds and signs an X.509 v3 certificate. `issuer` nil means self-signed.
private func buildCertificate(
    commonName: String,
    publicKey: OpaquePointer,
    issuer: Certificate?,
    signingKey: PrivateKey,
    serial: CertificateSerial,
    notBefore: Date,
    notAfter: Date,
    extensions: [(Int32, String)]
) throws(CryptoError) -> Certificate {
    guard isValidDeviceName(commonName) else {
        throw CryptoError(.invalidArgument, "X509", reason: "common name must be 1-64 UTF-8 bytes without control characters")
    }
    guard notAfter > notBefore else { throw CryptoError(.invalidArgument, "X509", reason: "notAfter must be after notBefore") }
    OpenSSLErrorQueue.clear()
    guard let x509 = X509_new() else { throw CryptoError.openSSL(.outOfMemory, "X509_new") }
    // Owned from here on: freed by the Certificate's deinit on every path.
    let certificate = Certificate(taking: x509)

    guard X509_set_version(x509, 2) == 1 else { throw CryptoError.openSSL(.encoding, "X509_set_version") }

    let serialBytes = serial.bytes
    guard let bignum = serialBytes.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else {
        throw CryptoError.openSSL(.outOfMemory, "BN_bin2bn")
    }
    defer { BN_free(bignum) }
    guard let integer = BN_to_ASN1_INTEGER(bignum, nil) else { throw CryptoError.openSSL(.encoding, "BN_to_ASN1_INTEGER") }
    defer { ASN1_INTEGER_free(integer) }
    guard X509_set_serialNumber(x509, integer) == 1 else { throw CryptoError.openSSL(.encoding, "X509_set_serialNumber") }

    guard ASN1_TIME_set(X509_getm_notBefore(x509), time_t(notBefore.timeIntervalSince1970.rounded(.down))) != nil,
          ASN1_TIME_set(X509_getm_notAfter(x509), time_t(notAfter.timeIntervalSince1970.rounded(.down))) != nil else {
        throw CryptoError.openSSL(.encoding, "ASN1_TIME_set")
    }

    guard let subject = X509_NAME_new() else { throw CryptoError.openSSL(.outOfMemory, "X509_NAME_new") }
    defer { X509_NAME_free(subject) }
    guard addCommonName(subject, commonName) else { throw CryptoError.openSSL(.encoding, "X509_NAME_add_entry_by_NID") }
    guard X509_set_subject_name(x509, subject) == 1 else { throw CryptoError.openSSL(.encoding, "X509_set_subject_name") }
    // X509_get_subject_name returns the issuer's own name object (get0): copied by set_issuer_name.
    let issuerName = issuer.map { X509_get_subject_name($0.pointer) } ?? subject
    guard let issuerName, X509_set_issuer_name(x509, issuerName) == 1 else {
        throw CryptoError.openSSL(.encoding, "X509_set_issuer_name")
    }
    guard X509_set_pubkey(x509, publicKey) == 1 else { throw CryptoError.openSSL(.encoding, "X509_set_pubkey") }

    for (nid, value) in extensions {
        guard storesync_x509_add_ext(x509, issuer?.pointer ?? x509, nid, value) == 1 else {
            throw CryptoError.openSSL(.encoding, "X509V3_EXT_nconf_nid(\(nid))")
        }
    }
    guard X509_sign(x509, signingKey.pointer, EVP_sha256()) > 0 else { throw CryptoError.openSSL(.signing, "X509_sign") }
    return certificate
}
