import SyncEngine

/// Appends wire primitives to a growing byte array (see PROTOCOL.md §3 for each encoding).
///
/// A plain `[UInt8]` with reserved capacity: appends of one byte are a capacity check and a
/// store once the array is uniquely owned, which is fast enough; multi-byte fields go through
/// `append(contentsOf:)` on contiguous storage.
struct ByteWriter {
    var bytes: [UInt8]

    init(reserving capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    @inline(__always)
    mutating func byte(_ value: UInt8) { bytes.append(value) }

    @inline(__always)
    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// LEB128, shortest form.
    @inline(__always)
    mutating func uvarint(_ value: UInt64) {
        if value < 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value))
            return
        }
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    @inline(__always)
    mutating func uvarint(_ value: Int) { uvarint(UInt64(value)) }

    /// Zigzag, then LEB128: small magnitudes of either sign stay short.
    @inline(__always)
    mutating func svarint(_ value: Int64) {
        uvarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func fixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func fixed32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            uvarint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob(_ value: [UInt8]) {
        uvarint(value.count)
        bytes.append(contentsOf: value)
    }

    mutating func replicaID(_ id: ReplicaID) {
        fixed64(id.high)
        fixed64(id.low)
    }

    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
}
