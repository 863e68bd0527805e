public import SyncEngine

/// The identities of what central rules write, derived from what caused it, never from the hub
/// that ran them, its clock or the order things arrived in: every hub that derives a row or a
/// correction derives the same key, value and version, so the copies merge into one.
public enum RulesOrigin {
    /// The replica ids rule writes are stamped with. Far below any random replica id (a real
    /// write at the same clock reading wins a tie), never used by a replica, never 0 (never written).
    static func origin(_ tag: UInt64) -> ReplicaID { ReplicaID(high: 0, low: 0x5255_4C45_5300_0000 | tag) }

    /// Stage compensations: one origin per funnel stage, ordered like `FunnelStage.rank`, so of
    /// two compensations of one write the one to the further stage wins, on every replica.
    static func stage(_ stage: FunnelStage) -> ReplicaID { origin(UInt64(stage.rank)) }
    static let links = origin(0x10)
    static let reviews = origin(0x20)
    static let promotions = origin(0x30)

    /// Whether a version was written by the central rules (and not by a guide's terminal).
    public static func isRules(_ id: ReplicaID) -> Bool { id.high == 0 && id.low & ~0xFF == 0x5255_4C45_5300_0000 }
}

/// Keys of derived rows: a prefix and the first 128 bits of a SHA-256 over length-prefixed fields.
enum DerivedKey {
    static func make(_ prefix: String, _ fields: [String]) -> String {
        var bytes: [UInt8] = []
        for field in fields {
            let utf8 = Array(field.utf8)
            var length = UInt32(truncatingIfNeeded: utf8.count).bigEndian
            withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: utf8)
        }
        let digest = SHA256.hash(bytes)
        let hex = Array("0123456789abcdef".utf8)
        var text = prefix.utf8.map { $0 }
        for byte in digest.prefix(16) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// SHA-256 (FIPS 180-4), for derived keys: no cryptographic package is available on Linux
/// without dependencies, and keys must be the same on every hub and platform.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hash(_ message: [UInt8]) -> [UInt8] {
        var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        let bitLength = UInt64(message.count) &* 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let base = chunk + 4 * i
                w[i] = UInt32(data[base]) << 24 | UInt32(data[base + 1]) << 16 | UInt32(data[base + 2]) << 8 | UInt32(data[base + 3])
            }
            for i in 16..<64 {
                let s0 = rotate(w[i - 15], 7) ^ rotate(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotate(w[i - 2], 17) ^ rotate(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
            for i in 0..<64 {
                let s1 = rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)
                let choice = (e & f) ^ (~e & g)
                let t1 = h &+ s1 &+ choice &+ k[i] &+ w[i]
                let s0 = rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ majority
                (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
            state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
        }
        return state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
    }

    private static func rotate(_ value: UInt32, _ count: UInt32) -> UInt32 { value >> count | value << (32 - count) }
}

extension Version {
    /// The same text as `description` (`<milliseconds>.<counter>@<origin, 32 hex digits>`),
    /// which review keys hash, built in one buffer: `ReplicaID.description` makes a string per
    /// byte, and a review's key cost more in formatting its versions than in hashing them.
    var keyText: String {
        var text: [UInt8] = []
        text.reserveCapacity(60)
        func decimal(_ value: UInt64) {
            var digits: [UInt8] = []
            var rest = value
            repeat {
                digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
                rest /= 10
            } while rest > 0
            text.append(contentsOf: digits.reversed())
        }
        decimal(hlc.milliseconds)
        text.append(UInt8(ascii: "."))
        decimal(UInt64(hlc.counter))
        text.append(UInt8(ascii: "@"))
        let hex = Array("0123456789abcdef".utf8)
        for word in [origin.high, origin.low] {
            for shift in stride(from: 60, through: 0, by: -4) { text.append(hex[Int(word >> UInt64(shift) & 0xf)]) }
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// A version the rules stored as (hlc INTEGER, origin BLOB) in their own tables, read
    /// without copying the blob. A blob that is not 16 bytes is a damaged table, reported.
    static func stored(hlc: Int64, origin bytes: UnsafeRawBufferPointer, table: String) throws(SyncError) -> Version {
        guard bytes.count == 16 else {
            throw SyncError.schemaMismatch(table: table, reason: "a stored origin has \(bytes.count) bytes, not 16")
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 {
            high = high << 8 | UInt64(bytes[index])
            low = low << 8 | UInt64(bytes[8 + index])
        }
        return Version(hlc: HLCTimestamp(rawValue: UInt64(bitPattern: hlc)), origin: ReplicaID(high: high, low: low))
    }
}
