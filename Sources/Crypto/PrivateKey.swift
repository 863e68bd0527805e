import COpenSSL
import Glibc

/// An EC P-256 private key (an `EVP_PKEY`), owned by this object and freed in `deinit`.
///
/// `@unchecked Sendable`: the key is never mutated after creation, and OpenSSL 3 allows a
/// constant `EVP_PKEY` to be used for signing from several threads at once.
public final class PrivateKey: @unchecked Sendable {
    package let pointer: OpaquePointer

    /// Takes ownership of one reference to `pointer`.
    package init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        EVP_PKEY_free(self.pointer)
    }

    /// A new key on the NIST P-256 curve (prime256v1), from OpenSSL's CSPRNG.
    public static func generateP256() throws(CryptoError) -> PrivateKey {
        OpenSSLErrorQueue.clear()
        guard let key = storesync_ec_generate("P-256") else {
            throw CryptoError.openSSL(.keyGeneration, "EVP_PKEY_generate(P-256)")
        }
        return PrivateKey(taking: key)
    }

    /// Reads an unencrypted PEM private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
    public convenience init(pem: String) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let key = withReadOnlyBIO(Array(pem.utf8)) { bio in
            // A callback that gives no passphrase: without one OpenSSL would prompt on the
            // terminal for an encrypted key; this way such a key is refused instead.
            PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let key else { throw CryptoError.openSSL(.decoding, "PEM_read_bio_PrivateKey") }
        self.init(taking: key)
    }

    /// Reads a PEM private key file.
    public convenience init(pemFile path: String) throws(CryptoError) {
        try self.init(pem: try readTextFile(path))
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    public func pem() throws(CryptoError) -> String {
        OpenSSLErrorQueue.clear()
        guard let bytes = collectingBIO({ bio in
            PEM_write_bio_PrivateKey(bio, self.pointer, nil, nil, 0, nil, nil) == 1
        }) else {
            throw CryptoError.openSSL(.encoding, "PEM_write_bio_PrivateKey")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes the key as PEM to `path` with mode 0600, atomically: it goes to a new temporary
    /// file created 0600 (so no other user can open it even for an instant) which then
    /// replaces `path`.
    public func write(toFile path: String) throws(CryptoError) {
        try writeFileAtomically(path, Array(try self.pem().utf8), mode: 0o600)
    }

    /// The DER SubjectPublicKeyInfo of the public half (to match a key with a certificate).
    public func publicKeyDER() throws(CryptoError) -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let bytes = collectingBIO({ bio in i2d_PUBKEY_bio(bio, self.pointer) == 1 }) else {
            throw CryptoError.openSSL(.encoding, "i2d_PUBKEY_bio")
        }
        return bytes
    }
}

// MARK: files

package func readTextFile(_ path: String) throws(CryptoError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CryptoError(.file, "open", reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    // A credential file is small; refuse anything absurd instead of reading it all.
    let limit = 1 << 20
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw CryptoError(.file, "read", reason: String(cString: strerror(errno)))
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        guard bytes.count <= limit else { throw CryptoError(.file, "read", reason: "file larger than 1 MiB") }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `bytes` to a fresh temporary file beside `path` (created with `mode`, exclusive),
/// fsyncs it, and renames it over `path`.
package func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(CryptoError) {
    let suffix: String
    do {
        suffix = hexString(try SecureRandom.bytes(8))
    }
    let temporary = "\(path).tmp-\(suffix)"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
    guard fd >= 0 else { throw CryptoError(.file, "open", reason: String(cString: strerror(errno))) }
    var failure: CryptoError?
    // The umask may have removed bits, never added any; fchmod makes the mode exact.
    if fchmod(fd, mode) != 0 {
        failure = CryptoError(.file, "fchmod", reason: String(cString: strerror(errno)))
    }
    var offset = 0
    while failure == nil, offset < bytes.count {
        let count = bytes.withUnsafeBytes { raw in
            Glibc.write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
        }
        if count < 0 {
            if errno == EINTR { continue }
            failure = CryptoError(.file, "write", reason: String(cString: strerror(errno)))
        } else {
            offset += count
        }
    }
    if failure == nil, fsync(fd) != 0 {
        failure = CryptoError(.file, "fsync", reason: String(cString: strerror(errno)))
    }
    close(fd)
    if failure == nil, rename(temporary, path) != 0 {
        failure = CryptoError(.file, "rename", reason: String(cString: strerror(errno)))
    }
    if let failure {
        unlink(temporary)
        throw failure
    }
}
