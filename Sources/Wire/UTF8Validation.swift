/// Strict UTF-8 validation (RFC 3629; Unicode table 3-7 of well-formed byte sequences): no
/// overlong forms, no surrogates (U+D800–DFFF), nothing above U+10FFFF, no truncated sequence.
///
/// Ours rather than `String(validating:)` only for speed: text cells dominate decoding, and the
/// common all-ASCII string is checked eight bytes at a time. The tests compare both on random
/// and adversarial bytes.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = bytes.count
        var index = 0
        while index < count {
            // ASCII fast path: eight bytes at a time while none has its high bit set.
            while count - index >= 8 {
                let word = UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 != 0 { break }
                index += 8
            }
            guard index < count else { return true }
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return false
            }
            guard count - index >= length else { return false }
            // The second byte has the lead-specific range; the others are plain continuations.
            let second = bytes[index + 1]
            guard second >= low && second <= high else { return false }
            var position = index + 2
            while position < index + length {
                guard bytes[position] & 0xC0 == 0x80 else { return false }
                position += 1
            }
            index += length
        }
        return true
    }
}
