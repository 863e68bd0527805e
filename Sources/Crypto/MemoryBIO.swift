import COpenSSL

/// Runs `body` with a read-only memory BIO over `bytes`; the BIO never outlives the call, so
/// the bytes it borrows stay valid. Returns nil if the BIO cannot be made.
package func withReadOnlyBIO<Result>(_ bytes: [UInt8], _ body: (OpaquePointer) -> Result?) -> Result? {
    bytes.withUnsafeBytes { raw -> Result? in
        // An empty array may have no base address; OpenSSL needs a valid pointer.
        let empty: [UInt8] = [0]
        return empty.withUnsafeBytes { fallback -> Result? in
            let base = raw.baseAddress ?? fallback.baseAddress
            guard let base, let bio = BIO_new_mem_buf(base, Int32(clamping: raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return body(bio)
        }
    }
}

/// Runs `write` against a fresh memory BIO and returns what it wrote, or nil if the BIO cannot
/// be made or `write` reports failure.
package func collectingBIO(_ write: (OpaquePointer) -> Bool) -> [UInt8]? {
    guard let bio = BIO_new(BIO_s_mem()) else { return nil }
    defer { BIO_free(bio) }
    guard write(bio) else { return nil }
    var data: UnsafeMutablePointer<CChar>?
    let length = storesync_bio_get_mem_data(bio, &data)
    guard length > 0, let data else { return [] }
    return [UInt8](UnsafeRawBufferPointer(start: data, count: Int(length)))
}

package func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return text
}

/// Lowercase or uppercase hex to bytes; nil for odd length or a non-hex character.
package func bytesFromHex(_ text: some StringProtocol) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(utf8.count / 2)
    var index = 0
    while index < utf8.count {
        guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}
