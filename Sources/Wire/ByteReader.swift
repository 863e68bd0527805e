import SyncEngine

/// Reads wire primitives from one frame's payload, never past its end.
///
/// Works on an unsafe buffer that the caller keeps alive for the reader's lifetime (the
/// decoder holds the frame's bytes while it decodes), so reads are plain loads after one
/// explicit bounds check each.
struct ByteReader {
    let base: UnsafeBufferPointer<UInt8>
    private(set) var offset: Int = 0
    /// Elements (list entries, rows, cells, values) this message may still declare; see `count`.
    private(set) var elementBudget: Int

    init(_ base: UnsafeBufferPointer<UInt8>, maxElements: Int) {
        self.base = base
        self.elementBudget = maxElements
    }

    var remaining: Int { base.count - offset }
    var isAtEnd: Bool { offset == base.count }

    @inline(__always)
    mutating func byte() throws(WireError) -> UInt8 {
        guard offset < base.count else { throw WireError.badFrame("payload ends inside a field") }
        let value = base[offset]
        offset += 1
        return value
    }

    mutating func bool() throws(WireError) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        default: throw WireError.badFrame("boolean is neither 0 nor 1")
        }
    }

    /// LEB128; rejects more than 10 bytes, values above 2^64-1 and non-minimal forms, so that
    /// every value has exactly one encoding.
    @inline(__always)
    mutating func uvarint() throws(WireError) -> UInt64 {
        guard offset < base.count else { throw WireError.badFrame("payload ends inside a field") }
        let first = base[offset]
        if first < 0x80 {
            offset += 1
            return UInt64(first)
        }
        return try uvarintSlow()
    }

    private mutating func uvarintSlow() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for index in 0..<10 {
            guard offset < base.count else { throw WireError.badFrame("payload ends inside a varint") }
            let byte = base[offset]
            offset += 1
            if index == 9 && byte > 1 { throw WireError.badVarint }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 {
                if byte == 0 && index > 0 { throw WireError.badVarint }
                return result
            }
            shift += 7
        }
        throw WireError.badVarint
    }

    mutating func svarint() throws(WireError) -> Int64 {
        let raw = try uvarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A varint that must fit `T`; a larger value is BAD_FRAME (the field's range, not the varint).
    mutating func uvarint<T: FixedWidthInteger & UnsignedInteger>(as type: T.Type, _ field: String) throws(WireError) -> T {
        let raw = try uvarint()
        guard let value = T(exactly: raw) else { throw WireError.badFrame("\(field) out of range") }
        return value
    }

    /// An element count. Every counted element takes at least one byte, so a count above the
    /// bytes left is BAD_FRAME before anything is reserved for it. And since a one-byte element
    /// (a null cell) becomes a value of tens of bytes in memory, all counts of one message also
    /// draw on one element budget (TOO_LARGE beyond it): a peer cannot make us allocate more than
    /// a small multiple of the frame cap.
    mutating func count(_ what: String) throws(WireError) -> Int {
        let raw = try uvarint()
        guard raw <= UInt64(remaining) else { throw WireError.badFrame("\(what) count exceeds the payload") }
        let count = Int(raw)
        guard count <= elementBudget else {
            throw WireError.tooLarge(what: "\(what) count", size: raw, maximum: UInt64(max(0, elementBudget)))
        }
        elementBudget -= count
        return count
    }

    /// Checks `count` elements of at least one byte each against the bytes left and the budget,
    /// for lists whose length is implied rather than declared (the values of view rows).
    /// The caller guarantees `count` cannot overflow (a product of two counts, each ≤ 16 Mi).
    mutating func charge(_ count: Int, _ what: String) throws(WireError) {
        guard count <= remaining else { throw WireError.badFrame("\(what) count exceeds the payload") }
        guard count <= elementBudget else {
            throw WireError.tooLarge(what: "\(what) count", size: UInt64(count), maximum: UInt64(max(0, elementBudget)))
        }
        elementBudget -= count
    }

    mutating func fixed64() throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw WireError.badFrame("payload ends inside a field") }
        let value = UnsafeRawBufferPointer(base).loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return UInt64(bigEndian: value)
    }

    mutating func fixed32() throws(WireError) -> UInt32 {
        guard remaining >= 4 else { throw WireError.badFrame("payload ends inside a field") }
        let value = UnsafeRawBufferPointer(base).loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        offset += 4
        return UInt32(bigEndian: value)
    }

    /// The next `length` bytes, bounds-checked, without copying.
    mutating func span(_ length: Int) throws(WireError) -> UnsafeBufferPointer<UInt8> {
        guard length <= remaining else { throw WireError.badFrame("payload ends inside a field") }
        let slice = UnsafeBufferPointer(rebasing: base[offset..<(offset + length)])
        offset += length
        return slice
    }

    mutating func string() throws(WireError) -> String {
        let length = try uvarint()
        guard length <= UInt64(remaining) else { throw WireError.badFrame("string runs past the payload") }
        let utf8 = try span(Int(length))
        // Validate first, then build: `String(decoding:)` alone would silently repair invalid
        // bytes, and `String(validating:)` is a generic, unspecialised path several times slower.
        guard UTF8Validation.isValid(utf8) else { throw WireError.invalidUTF8 }
        return String(decoding: utf8, as: UTF8.self)
    }

    mutating func blob() throws(WireError) -> [UInt8] {
        let length = try uvarint()
        guard length <= UInt64(remaining) else { throw WireError.badFrame("blob runs past the payload") }
        return Array(try span(Int(length)))
    }

    mutating func replicaID() throws(WireError) -> ReplicaID {
        let high = try fixed64()
        let low = try fixed64()
        return ReplicaID(high: high, low: low)
    }
}
