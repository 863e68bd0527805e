import SyncEngine

/// Appends wire primitives to a growing byte array (see PROTOCOL.md §3 for each encoding).
///
/// A plain `[UInt8]` with reserved capacity: appends of one byte are a capacity check and a
/// store once the array is uniquely owned, which is fast enough; multi-byte fields go through
/// `append(contentsOf:)` on contiguous storage.
struct ByteWriter {
    /// The output. Between `withReserved` calls and `finishReserved` it may hold zero-filled
    /// space past `used`; every other method first calls `finishReserved`.
    var bytes: [UInt8]
    /// Bytes of `bytes` actually written, when raw writing has reserved space past them.
    private(set) var used = 0
    /// End of the space reserved for raw writing (== bytes.count when some is reserved).
    private(set) var reservedEnd = -1

    init(reserving capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { reservedEnd >= 0 ? used : bytes.count }

    /// Switches to raw writing: from here `used` counts the bytes.
    mutating func beginReserved() {
        if reservedEnd < 0 {
            used = bytes.count
            reservedEnd = bytes.count
        }
    }

    /// Drops the unused reserved space and returns to appending.
    mutating func finishReserved() {
        guard reservedEnd >= 0 else { return }
        bytes.removeSubrange(used...)
        reservedEnd = -1
    }

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

/// Writes into memory the caller has already sized, with no capacity or uniqueness check per
/// field: the changeset encoder's inner loop, where per-byte `Array.append` was most of the
/// encoding time. Every use is preceded by a computed upper bound of what it will write
/// (`ByteWriter.withReserved`), checked afterwards.
struct RawWriter {
    let base: UnsafeMutablePointer<UInt8>
    var position: Int

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        base[position] = value
        position += 1
    }

    @inline(__always)
    mutating func uvarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            base[position] = UInt8(truncatingIfNeeded: rest) | 0x80
            position += 1
            rest >>= 7
        }
        base[position] = UInt8(truncatingIfNeeded: rest)
        position += 1
    }

    @inline(__always)
    mutating func svarint(_ value: Int64) {
        uvarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inline(__always)
    mutating func fixed64(_ value: UInt64) {
        UnsafeMutableRawPointer(base + position).storeBytes(of: value.bigEndian, as: UInt64.self)
        position += 8
    }

    @inline(__always)
    mutating func raw(_ bytes: UnsafeBufferPointer<UInt8>) {
        if let source = bytes.baseAddress, bytes.count > 0 {
            (base + position).update(from: source, count: bytes.count)
            position += bytes.count
        }
    }

    @inline(__always)
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            uvarint(UInt64(utf8.count))
            raw(utf8)
        }
    }

    @inline(__always)
    mutating func blob(_ value: [UInt8]) {
        uvarint(UInt64(value.count))
        value.withUnsafeBufferPointer { raw($0) }
    }

    mutating func replicaID(_ id: ReplicaID) {
        fixed64(id.high)
        fixed64(id.low)
    }
}

extension ByteWriter {
    /// Runs `body` on raw memory of at least `maxBytes`, then keeps what it wrote.
    ///
    /// The array is grown in large steps and trimmed once at the end (`finishReserved`), so the
    /// zero-fill of new space is amortised over many calls.
    @inline(__always)
    mutating func withReserved(_ maxBytes: Int, _ body: (inout RawWriter) throws(WireError) -> Void) throws(WireError) {
        beginReserved()
        if reservedEnd - used < maxBytes {
            // Grow geometrically; the zeros are overwritten before anyone reads them.
            let growth = max(maxBytes, bytes.count / 2, 4096)
            bytes.append(contentsOf: repeatElement(0, count: reservedEnd - bytes.count + growth))
            reservedEnd = bytes.count
        }
        let start = used
        let written = try bytes.withUnsafeMutableBufferPointer { (buffer: inout UnsafeMutableBufferPointer<UInt8>) throws(WireError) -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            var writer = RawWriter(base: base, position: start)
            try body(&writer)
            return writer.position
        }
        // The bound is ours, computed from the same values; a miss would already have
        // written past it, so stop rather than continue with corrupt memory.
        precondition(written - start <= maxBytes, "changeset row bound underestimated")
        used = written
    }
}
