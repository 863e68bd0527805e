/// Incremental frame decoder: feed bytes as they arrive, in any chunking, and take messages
/// out with `next()`, which returns nil when it needs more bytes.
///
/// - The declared length is checked against the cap as soon as the header is complete, before
///   anything is buffered or allocated for the payload.
/// - After an error the decoder stays failed and rethrows the same error: a byte stream cannot
///   be resynchronised once a frame is wrong, so the connection must be closed.
/// - At the end of the stream call `finish()`: bytes left over are TRUNCATED.
///
/// Usage: after each `feed`, call `next()` until it returns nil.
public struct FrameDecoder: Sendable {
    public enum State: Sendable, Hashable {
        case waitingForHeader
        case waitingForPayload(type: UInt8, flags: UInt8, length: Int, checksum: UInt32)
        case failed(WireError)
    }

    public private(set) var state: State = .waitingForHeader
    public let maxFrameBytes: Int
    public let maxElements: Int

    private var buffer: [UInt8] = []
    /// Bytes of `buffer` before this index are consumed; compacted lazily.
    private var readIndex = 0

    /// A buffer this large is released rather than kept once drained, so one big frame does
    /// not pin its memory for the rest of a long session.
    private static let retainedCapacity = 1 << 20

    public init(maxFrameBytes: Int = WireFormat.maxFrameBytes, maxElements: Int = WireFormat.maxElements) {
        self.maxFrameBytes = maxFrameBytes
        self.maxElements = maxElements
    }

    /// Bytes received and not yet returned as part of a message.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or nil if more bytes are needed.
    public mutating func next() throws(WireError) -> Message? {
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .waitingForHeader:
                guard try readHeader() else { return nil }
            case .waitingForPayload(let type, let flags, let length, let checksum):
                guard bufferedByteCount >= WireFormat.headerSize + length else { return nil }
                do {
                    let message = try decodePayload(type: type, flags: flags, length: length, checksum: checksum)
                    readIndex += WireFormat.headerSize + length
                    state = .waitingForHeader
                    releaseIfDrained()
                    return message
                } catch {
                    state = .failed(error)
                    throw error
                }
            }
        }
    }

    /// Call at the end of the stream, after `next()` returned nil: throws the decoder's error,
    /// or TRUNCATED if the stream stopped inside a frame.
    public func finish() throws(WireError) {
        if case .failed(let error) = state { throw error }
        guard bufferedByteCount == 0 else { throw WireError.truncated(bufferedBytes: bufferedByteCount) }
    }

    /// Parses the header once complete; fails early on a bad magic or version so a stray
    /// client (HTTP, TLS) is refused after two or three bytes.
    private mutating func readHeader() throws(WireError) -> Bool {
        let available = bufferedByteCount
        do throws(WireError) {
            if available >= 2 && (buffer[readIndex] != WireFormat.magic0 || buffer[readIndex + 1] != WireFormat.magic1) {
                throw WireError.badMagic
            }
            if available >= 3 && buffer[readIndex + 2] != WireFormat.frameVersion {
                throw WireError.unsupportedVersion(buffer[readIndex + 2])
            }
            guard available >= WireFormat.headerSize else { return false }
            let length = buffer[(readIndex + 5)..<(readIndex + 9)].reduce(0) { $0 << 8 | UInt32($1) }
            guard Int(length) <= maxFrameBytes else {
                throw WireError.tooLarge(what: "payload bytes", size: UInt64(length), maximum: UInt64(maxFrameBytes))
            }
            let checksum = buffer[(readIndex + 9)..<(readIndex + 13)].reduce(0) { $0 << 8 | UInt32($1) }
            state = .waitingForPayload(type: buffer[readIndex + 3], flags: buffer[readIndex + 4], length: Int(length), checksum: checksum)
            return true
        } catch {
            state = .failed(error)
            throw error
        }
    }

    /// Checks, in order: checksum, flags, type, then the payload's fields.
    private func decodePayload(type: UInt8, flags: UInt8, length: Int, checksum: UInt32) throws(WireError) -> Message {
        let start = readIndex
        let maxElements = self.maxElements
        return try buffer.withUnsafeBufferPointer { (all: UnsafeBufferPointer<UInt8>) throws(WireError) -> Message in
            let frame = UnsafeBufferPointer(rebasing: all[start..<(start + WireFormat.headerSize + length)])
            let payload = UnsafeBufferPointer(rebasing: frame[WireFormat.headerSize...])
            var crc = CRC32.update(0, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(frame)[0..<9]))
            crc = CRC32.update(crc, UnsafeRawBufferPointer(payload))
            guard crc == checksum else { throw WireError.badChecksum(expected: checksum, actual: crc) }
            // No flag is defined in format 1; a set bit may change how the payload reads
            // (compression, say), so guessing would be worse than refusing.
            guard flags == 0 else { throw WireError.badFrame("reserved flag bits set") }
            guard let messageType = MessageType(rawValue: type) else { throw WireError.unknownMessageType(type) }
            var reader = ByteReader(payload, maxElements: maxElements)
            return try reader.message(of: messageType)
        }
    }

    private mutating func compactIfUseful() {
        // Moving the unread tail costs its length; do it only when the consumed prefix is
        // larger, so the total cost stays linear in the bytes fed.
        if readIndex > 0 && readIndex >= bufferedByteCount {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }

    private mutating func releaseIfDrained() {
        guard readIndex == buffer.count else { return }
        readIndex = 0
        if buffer.capacity > FrameDecoder.retainedCapacity {
            buffer = []
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
    }
}

extension FrameDecoder {
    /// Decodes exactly one complete frame; anything else (more, less, an error) throws.
    public static func decodeFrame(_ bytes: [UInt8], maxFrameBytes: Int = WireFormat.maxFrameBytes) throws(WireError) -> Message {
        var decoder = FrameDecoder(maxFrameBytes: maxFrameBytes)
        decoder.feed(bytes)
        guard let message = try decoder.next() else { throw WireError.truncated(bufferedBytes: bytes.count) }
        guard decoder.bufferedByteCount == 0 else { throw WireError.badFrame("bytes after the frame") }
        return message
    }
}
