import SyncEngine

/// Constants of the frame format (PROTOCOL.md §2).
public enum WireFormat {
    /// `S`, `Y`: lets a receiver reject a stray HTTP or TLS client at once.
    public static let magic0: UInt8 = 0x53
    public static let magic1: UInt8 = 0x59
    /// The frame format this codec reads and writes; the message set is negotiated in HELLO.
    public static let frameVersion: UInt8 = 1
    /// magic(2) version(1) type(1) flags(1) length(4) crc32(4).
    public static let headerSize = 13
    /// Largest payload a frame may declare unless both sides agreed on less: 16 MiB.
    public static let maxFrameBytes = 16 * 1024 * 1024
    /// Most elements (list entries, rows, cells, values) one message may carry.
    public static let maxElements = 1 << 20
    /// Protocol versions this codec implements.
    public static let supportedProtocolVersions: [UInt16] = [1, 2]

    /// A frame around an arbitrary payload, with a correct length and checksum. For tests,
    /// vectors and tools that need frames the encoder would refuse to produce.
    public static func frame(type: UInt8, flags: UInt8 = 0, payload: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.append(contentsOf: payload)
        sealHeader(&bytes, at: 0, type: type, flags: flags, payloadLength: UInt32(truncatingIfNeeded: payload.count))
        return bytes
    }

    /// Fills in the 13 header bytes at `start`, for a payload that follows them up to the end.
    static func sealHeader(_ bytes: inout [UInt8], at start: Int, type: UInt8, flags: UInt8, payloadLength: UInt32) {
        bytes.withUnsafeMutableBytes { raw in
            raw[start] = magic0
            raw[start + 1] = magic1
            raw[start + 2] = frameVersion
            raw[start + 3] = type
            raw[start + 4] = flags
            raw.storeBytes(of: payloadLength.bigEndian, toByteOffset: start + 5, as: UInt32.self)
            // The checksum covers the first 9 header bytes and the payload.
            var crc = CRC32.update(0, UnsafeRawBufferPointer(rebasing: raw[start..<(start + 9)]))
            crc = CRC32.update(crc, UnsafeRawBufferPointer(rebasing: raw[(start + headerSize)...]))
            raw.storeBytes(of: crc.bigEndian, toByteOffset: start + 9, as: UInt32.self)
        }
    }
}

/// Turns messages into frames.
public struct FrameEncoder: Sendable {
    /// Payloads above this are refused with TOO_LARGE: the peer would refuse them too.
    public var maxFrameBytes: Int

    public init(maxFrameBytes: Int = WireFormat.maxFrameBytes) {
        self.maxFrameBytes = maxFrameBytes
    }

    public func encode(_ message: Message) throws(WireError) -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(message, appendingTo: &bytes)
        return bytes
    }

    /// Appends one frame, so a sender can batch several frames in one write.
    /// On error `bytes` is left as it was.
    public func encode(_ message: Message, appendingTo bytes: inout [UInt8]) throws(WireError) {
        let start = bytes.count
        var writer = ByteWriter(reserving: 0)
        swap(&writer.bytes, &bytes)
        // Geometric growth: reserving the exact size on every call would copy the whole buffer
        // each time a caller appends many frames to one array (quadratic).
        let needed = start + WireFormat.headerSize + message.estimatedPayloadSize
        if writer.bytes.capacity < needed { writer.bytes.reserveCapacity(max(needed, writer.bytes.capacity * 2)) }
        writer.bytes.append(contentsOf: repeatElement(0, count: WireFormat.headerSize))
        do throws(WireError) {
            try writer.payload(of: message)
        } catch {
            writer.bytes.removeSubrange(start...)
            swap(&writer.bytes, &bytes)
            throw error
        }
        let payloadLength = writer.count - start - WireFormat.headerSize
        guard payloadLength <= maxFrameBytes else {
            writer.bytes.removeSubrange(start...)
            swap(&writer.bytes, &bytes)
            throw WireError.tooLarge(what: "payload bytes", size: UInt64(payloadLength), maximum: UInt64(maxFrameBytes))
        }
        WireFormat.sealHeader(&writer.bytes, at: start, type: message.type.rawValue, flags: 0, payloadLength: UInt32(payloadLength))
        swap(&writer.bytes, &bytes)
    }
}

extension Message {
    /// A guess at the payload size, to reserve once instead of growing the buffer repeatedly.
    /// Cheap on purpose (no pass over cells): the changeset writer grows geometrically anyway.
    var estimatedPayloadSize: Int {
        switch self {
        case .push(let changeset): return changeset.estimatedSize
        case .pullBatch(let batch): return 1 + batch.changeset.estimatedSize
        case .viewRows(let rows): return 64 + rows.columns.count * 16 + rows.rows.count * rows.columns.count * 12
        default: return 64
        }
    }
}

extension Changeset {
    /// About 80 bytes per row of a few cells: roughly what a leads-like row takes.
    var estimatedSize: Int {
        64 + tables.reduce(0) { $0 + 64 + $1.rows.count * 80 }
    }
}
