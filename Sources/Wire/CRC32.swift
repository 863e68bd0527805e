/// CRC-32 as in zlib, Ethernet and PNG (reflected polynomial 0xEDB88320, initial value and
/// final xor 0xFFFFFFFF; the check value of "123456789" is 0xCBF43926), chosen because every
/// language has it (`zlib.crc32`, `java.util.zip.CRC32`, Go's `crc32.ChecksumIEEE`).
///
/// Slicing-by-16: sixteen bytes per step through sixteen tables, several times faster than the
/// byte-at-a-time loop, which would otherwise dominate encode+decode time.
public enum CRC32 {
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        update(0, bytes)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// Continues a checksum: `update(update(0, a), b) == checksum(a + b)`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var index = 0
        let count = bytes.count
        table.withUnsafeBufferPointer { t in
            while count - index >= 16 {
                let first = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let second = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self))
                let a = UInt32(truncatingIfNeeded: first) ^ c
                let b = UInt32(truncatingIfNeeded: first >> 32)
                let d = UInt32(truncatingIfNeeded: second)
                let e = UInt32(truncatingIfNeeded: second >> 32)
                c = t[15 * 256 + Int(a & 0xff)] ^ t[14 * 256 + Int((a >> 8) & 0xff)]
                    ^ t[13 * 256 + Int((a >> 16) & 0xff)] ^ t[12 * 256 + Int(a >> 24)]
                    ^ t[11 * 256 + Int(b & 0xff)] ^ t[10 * 256 + Int((b >> 8) & 0xff)]
                    ^ t[9 * 256 + Int((b >> 16) & 0xff)] ^ t[8 * 256 + Int(b >> 24)]
                    ^ t[7 * 256 + Int(d & 0xff)] ^ t[6 * 256 + Int((d >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((d >> 16) & 0xff)] ^ t[4 * 256 + Int(d >> 24)]
                    ^ t[3 * 256 + Int(e & 0xff)] ^ t[2 * 256 + Int((e >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((e >> 16) & 0xff)] ^ t[Int(e >> 24)]
                index += 16
            }
            while index < count {
                c = t[Int((c ^ UInt32(bytes[index])) & 0xff)] ^ (c >> 8)
                index += 1
            }
        }
        return ~c
    }

    /// 16 × 256 entries: table k gives the effect of a byte followed by k zero bytes.
    private static let table: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 16 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            table[n] = c
        }
        for n in 0..<256 {
            for k in 1..<16 {
                let previous = table[(k - 1) * 256 + n]
                table[k * 256 + n] = table[Int(previous & 0xff)] ^ (previous >> 8)
            }
        }
        return table
    }()
}
