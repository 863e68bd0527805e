import Foundation

/// Primary keys generated on the device: 26 characters of Crockford base32 (a ULID):
/// 48 bits of milliseconds, then 80 random bits.
///
/// Time-ordered keys land at the right edge of SQLite's B-trees, so inserts append
/// instead of splitting pages at random; 80 random bits make collisions between
/// devices practically impossible, so nothing needs a central counter.
public enum UniqueID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(milliseconds: UInt64 = systemWallClock()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(milliseconds: milliseconds, using: &generator)
    }

    public static func make(milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        let randomHigh = UInt16.random(in: .min ... .max, using: &generator)
        let randomLow = UInt64.random(in: .min ... .max, using: &generator)
        // 128 bits: time(48) | random(80), written as 26 base32 digits (the first carries 3 bits).
        let high = (milliseconds & HLCTimestamp.millisecondMask) << 16 | UInt64(randomHigh)
        let low = randomLow
        var characters = [UInt8](repeating: 0, count: 26)
        for position in 0..<26 {
            let shift = 125 - 5 * position
            let digit: UInt64
            if shift >= 64 {
                digit = (high >> UInt64(shift - 64)) & 0x1f
            } else if shift > 59 {
                digit = ((high << UInt64(64 - shift)) | (low >> UInt64(shift))) & 0x1f
            } else {
                digit = (low >> UInt64(shift)) & 0x1f
            }
            characters[position] = alphabet[Int(digit)]
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
