import Foundation
import SyncEngine
import Wire
import XCTest

/// Random and mutated input never crashes or hangs the decoder, and always ends in messages
/// or a spec'd error. Every frame the decoder accepts re-encodes to exactly its own bytes:
/// the format has one encoding per message, so a decoder bug that skips or misreads a byte
/// shows up as a difference.
final class MutationTests: XCTestCase {
    func corpus() throws -> [[UInt8]] {
        var frames = VectorCatalog.all.map(\.bytes)
        var generator = SplitMix64(seed: 0xC0FFEE)
        for _ in 0..<20 { frames.append(try FrameEncoder().encode(.push(randomChangeset(using: &generator, maxRows: 4)))) }
        return frames
    }

    func check(_ bytes: [UInt8], _ context: @autoclosure () -> String) {
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        var consumed = 0
        do {
            // Each message consumes at least a 13-byte header, so this loop ends.
            while let message = try decoder.next() {
                let encoded = try FrameEncoder().encode(message)
                let original = Array(bytes[consumed..<min(bytes.count, consumed + encoded.count)])
                XCTAssertEqual(encoded, original, "accepted frame does not re-encode to its bytes: \(context())")
                consumed += encoded.count
            }
            try decoder.finish()
        } catch {
            XCTAssertFalse(error.code.name.hasPrefix("CODE_"), context())
        }
    }

    func testMutatedFrames() throws {
        let frames = try corpus()
        for seed in UInt64(1)...3000 {
            var generator = SplitMix64(seed: seed)
            var bytes = frames[Int(generator.next() % UInt64(frames.count))]
            switch generator.next() % 6 {
            case 0: // flip 1-3 bits
                for _ in 0...(generator.next() % 3) where !bytes.isEmpty {
                    bytes[Int(generator.next() % UInt64(bytes.count))] ^= 1 << UInt8(generator.next() % 8)
                }
            case 1: // truncate
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            case 2: // extend with random bytes
                bytes += (0..<(generator.next() % 32)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            case 3: // huge or random length field
                let lengths: [UInt32] = [UInt32.max, 1 << 31, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1, UInt32(truncatingIfNeeded: generator.next())]
                let length = lengths[Int(generator.next() % 5)]
                if bytes.count >= 9 {
                    bytes[5] = UInt8(truncatingIfNeeded: length >> 24); bytes[6] = UInt8(truncatingIfNeeded: length >> 16)
                    bytes[7] = UInt8(truncatingIfNeeded: length >> 8); bytes[8] = UInt8(truncatingIfNeeded: length)
                }
            case 4: // mutate the payload and fix the checksum, so the body decoder sees it
                if bytes.count > 13 {
                    let payloadStart = 13
                    var payload = Array(bytes[payloadStart...])
                    for _ in 0...(generator.next() % 4) {
                        payload[Int(generator.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: generator.next())
                    }
                    if generator.next() % 4 == 0 { payload = Array(payload.prefix(Int(generator.next() % UInt64(payload.count + 1)))) }
                    bytes = WireFormat.frame(type: bytes[3], payload: payload)
                }
            default: // random bytes behind a valid-looking header
                let payload = (0..<(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                bytes = WireFormat.frame(type: UInt8(1 + generator.next() % 12), payload: payload)
            }
            check(bytes, "seed \(seed)")
            check(bytes + bytes, "seed \(seed), doubled")
        }
    }

    func testRandomBytes() {
        for seed in UInt64(1)...1000 {
            var generator = SplitMix64(seed: seed)
            var bytes: [UInt8] = [0x53, 0x59, 0x01].filter { _ in generator.next() % 4 != 0 }
            bytes += (0..<(generator.next() % 100)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            check(bytes, "seed \(seed)")
        }
    }

    /// The fuzzer's committed corpus is a regression suite: every input keeps the properties,
    /// whole and in random chunks.
    func testCommittedFuzzCorpus() throws {
        let directory = repositoryRoot.appendingPathComponent("Tools/storesync-wire-fuzz/corpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertGreaterThan(names.count, 50, "the corpus is missing")
        var generator = SplitMix64(seed: 0xF022)
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            check(bytes, name)
            let whole = decodeStream(bytes, chunkSizes: [])
            let chunked = decodeStream(bytes, chunkSizes: randomChunks(bytes.count, using: &generator))
            XCTAssertEqual(try whole.messages.map { try FrameEncoder().encode($0) }, try chunked.messages.map { try FrameEncoder().encode($0) }, name)
            XCTAssertEqual(whole.error?.code, chunked.error?.code, name)
        }
    }
}
