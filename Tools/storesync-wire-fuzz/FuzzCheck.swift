import Wire

/// The properties every input must keep, whatever its bytes. A violation stops the process
/// (libFuzzer records the input as a crash); the message never quotes the input.
///
/// 1. Decoding ends in messages and at most one spec'd error, never a crash or a hang.
/// 2. The outcome does not depend on how the bytes are split.
/// 3. Every accepted frame re-encodes to exactly its own bytes (one encoding per message).
enum FuzzCheck {
    struct Outcome: Equatable {
        var frames: [[UInt8]] = []
        var error: ErrorCode?
    }

    static func run(_ bytes: [UInt8]) {
        let whole = decode(bytes, chunkSize: bytes.count)
        // A second split derived from the input, so libFuzzer explores chunkings too.
        let chunkSize = bytes.isEmpty ? 1 : 1 + Int(bytes[bytes.count - 1] % 17)
        let split = decode(bytes, chunkSize: chunkSize)
        guard whole == split else { fatalError("outcome depends on chunking (chunk size \(chunkSize))") }
        var offset = 0
        for frame in whole.frames {
            guard offset + frame.count <= bytes.count, Array(bytes[offset..<(offset + frame.count)]) == frame else {
                fatalError("an accepted frame does not re-encode to its own bytes")
            }
            offset += frame.count
        }
        if whole.error == nil && offset != bytes.count {
            fatalError("input consumed without error but bytes are left")
        }
    }

    static func decode(_ bytes: [UInt8], chunkSize: Int) -> Outcome {
        var decoder = FrameDecoder()
        var outcome = Outcome()
        var offset = 0
        do {
            while offset < bytes.count {
                let end = min(bytes.count, offset + max(1, chunkSize))
                decoder.feed(bytes[offset..<end])
                offset = end
                while let message = try decoder.next() {
                    do {
                        outcome.frames.append(try FrameEncoder().encode(message))
                    } catch {
                        fatalError("a decoded message does not encode: \(error.code)")
                    }
                }
            }
            try decoder.finish()
        } catch {
            outcome.error = error.code
        }
        return outcome
    }
}
