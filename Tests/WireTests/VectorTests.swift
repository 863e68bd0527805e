import Foundation
import SyncEngine
import Wire
import XCTest

/// Checks Protocol/vectors against the codec. Regenerate the files after a deliberate format
/// change with `STORESYNC_WRITE_VECTORS=1 swift test --filter VectorTests`, and review the diff.
final class VectorTests: XCTestCase {
    struct LoadedVector {
        let name: String
        let bytes: [UInt8]
        let message: Any?
        let errorName: String?
    }

    func fileContent(_ vector: VectorCase) throws -> Data {
        var object: [String: Any] = ["name": vector.name, "description": vector.description, "hex": MessageJSON.hex(vector.bytes)]
        switch vector.expectation {
        case .message(let message): object["message"] = MessageJSON.object(message)
        case .error(let code):
            object["error"] = code.name
            object["code"] = Int(code.rawValue)
        }
        var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        data.append(0x0a)
        return data
    }

    func testVectorFilesMatchCatalog() throws {
        let write = ProcessInfo.processInfo.environment["STORESYNC_WRITE_VECTORS"] == "1"
        for vector in VectorCatalog.all {
            let url = vectorsDirectory.appendingPathComponent("\(vector.name).json")
            let expected = try fileContent(vector)
            if write {
                try expected.write(to: url)
            } else {
                let actual = try Data(contentsOf: url)
                XCTAssertEqual(actual, expected, "\(vector.name).json differs from the catalog; regenerate deliberately if the format changed")
            }
        }
    }

    func loadVectors() throws -> [LoadedVector] {
        let names = try FileManager.default.contentsOfDirectory(atPath: vectorsDirectory.path).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { fileName in
            let data = try Data(contentsOf: vectorsDirectory.appendingPathComponent(fileName))
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], fileName)
            let hex = try XCTUnwrap(object["hex"] as? String, "\(fileName): no hex")
            let bytes = try XCTUnwrap(MessageJSON.bytes(hex: hex), "\(fileName): bad hex")
            XCTAssertEqual(object["name"] as? String, String(fileName.dropLast(5)), "\(fileName): name differs from the file name")
            XCTAssertTrue((object["message"] == nil) != (object["error"] == nil), "\(fileName): needs exactly one of message and error")
            return LoadedVector(name: fileName, bytes: bytes, message: object["message"], errorName: object["error"] as? String)
        }
    }

    func testEveryVectorDecodesToItsMeaning() throws {
        let vectors = try loadVectors()
        XCTAssertGreaterThanOrEqual(vectors.count, VectorCatalog.all.count)
        for vector in vectors {
            let outcome = decodeStream(vector.bytes, chunkSizes: [])
            if let meaning = vector.message {
                XCTAssertNil(outcome.error, "\(vector.name): \(String(describing: outcome.error))")
                XCTAssertEqual(outcome.messages.count, 1, vector.name)
                guard let message = outcome.messages.first else { continue }
                XCTAssertEqual(try MessageJSON.canonical(MessageJSON.object(message)), try MessageJSON.canonical(meaning), vector.name)
                XCTAssertEqual(try FrameEncoder().encode(message), vector.bytes, "\(vector.name) does not re-encode to its bytes")
            } else {
                XCTAssertEqual(outcome.messages.count, 0, vector.name)
                XCTAssertEqual(outcome.error?.code.name, vector.errorName, vector.name)
                if let error = outcome.error { XCTAssertEqual(ErrorCode(name: error.code.name), error.code) }
            }
        }
    }

    func testVectorsInAnyChunking() throws {
        var generator = SplitMix64(seed: 0x5EED_0001)
        for vector in try loadVectors() {
            let reference = decodeStream(vector.bytes, chunkSizes: [])
            var chunkings: [[Int]] = [Array(repeating: 1, count: vector.bytes.count)]
            for _ in 0..<20 { chunkings.append(randomChunks(vector.bytes.count, using: &generator)) }
            for chunks in chunkings {
                let outcome = decodeStream(vector.bytes, chunkSizes: chunks)
                // Compared as bytes: the edge vector holds a NaN, which is never == itself.
                XCTAssertEqual(try outcome.messages.map { try FrameEncoder().encode($0) }, try reference.messages.map { try FrameEncoder().encode($0) }, "\(vector.name) chunks \(chunks)")
                XCTAssertEqual(outcome.error?.code, reference.error?.code, "\(vector.name) chunks \(chunks)")
            }
        }
    }

    func testConcatenatedValidVectorsInAnyChunking() throws {
        let valid = try loadVectors().filter { $0.message != nil }
        let stream = valid.flatMap(\.bytes)
        let expected = valid.flatMap { decodeStream($0.bytes, chunkSizes: []).messages }
        XCTAssertEqual(expected.count, valid.count)
        var generator = SplitMix64(seed: 0x5EED_0002)
        var chunkings: [[Int]] = [[], Array(repeating: 1, count: stream.count)]
        for _ in 0..<50 { chunkings.append(randomChunks(stream.count, using: &generator)) }
        for chunks in chunkings {
            let outcome = decodeStream(stream, chunkSizes: chunks)
            XCTAssertNil(outcome.error, "chunks \(chunks)")
            // Compared as bytes: the edge vector holds a NaN, which is never == itself.
            XCTAssertEqual(try outcome.messages.map { try FrameEncoder().encode($0) }, try expected.map { try FrameEncoder().encode($0) })
        }
    }

    /// A valid frame followed by a broken one: the first message is delivered, then the error.
    func testMessageThenErrorInOneStream() {
        let stream = VectorCatalog.pingFrame + Array("GET /".utf8)
        let outcome = decodeStream(stream, chunkSizes: [])
        XCTAssertEqual(outcome.messages, [.ping(nonce: 300)])
        XCTAssertEqual(outcome.error?.code, .badMagic)
    }

    func testCoverage() throws {
        let vectors = try loadVectors()
        var types = Set<UInt8>()
        for vector in vectors where vector.message != nil && vector.bytes.count > 3 { types.insert(vector.bytes[3]) }
        for type in MessageType.allCases {
            XCTAssertTrue(types.contains(type.rawValue), "no valid vector for \(type)")
        }
        let errors = Set(vectors.compactMap(\.errorName))
        for required in ["BAD_MAGIC", "BAD_CHECKSUM", "TRUNCATED", "TOO_LARGE", "UNKNOWN_MESSAGE_TYPE", "BAD_VARINT", "INVALID_UTF8", "UNSUPPORTED_VERSION", "BAD_FRAME", "INVALID_NAME"] {
            XCTAssertTrue(errors.contains(required), "no invalid vector for \(required)")
        }
        let names = Set(vectors.map(\.name))
        for required in ["truncated_header.json", "truncated_body.json", "length_over_cap.json", "bad_checksum_payload.json"] {
            XCTAssertTrue(names.contains(required), "missing \(required)")
        }
    }

    /// The encoder against layouts written out by hand from PROTOCOL.md, so the valid vectors
    /// are not only the encoder agreeing with itself.
    func testEncoderMatchesHandBuiltPayloads() throws {
        let hello = Bytes()
        hello.uvarint(1).uvarint(1).replica(replicaA).byte(0).string("store:S001").fixed64(hlc(0, 7).rawValue).utf8(Array("tok".utf8))
        XCTAssertEqual(try FrameEncoder().encode(VectorCatalog.valid[0].2), VectorCatalog.frame(.hello, hello))

        // Protocol version 2: HELLO listing 2 ends with lease:bytes; HELLO_ACK of version 2 ends
        // with max_clock_drift_ms:uvarint then lease:bytes (16).
        let helloV2 = Bytes()
        helloV2.uvarint(2).uvarint(2).uvarint(1).replica(replicaHub).byte(1).string("region:north").fixed64(hlc(1).rawValue).uvarint(0)
        helloV2.utf8(VectorCatalog.leaseA)
        let twoVersions = try XCTUnwrap(VectorCatalog.valid.first { $0.0 == "hello_hub_two_versions" }?.2)
        XCTAssertEqual(try FrameEncoder().encode(twoVersions), VectorCatalog.frame(.hello, helloV2))
        let ackV2 = Bytes()
        ackV2.uvarint(2).replica(replicaHub).fixed64(hlc(3, 2).rawValue).uvarint(41).uvarint(1_000)
        ackV2.uvarint(16 * 1024 * 1024).uvarint(10_000).uvarint(60_000).uvarint(300_000).utf8(VectorCatalog.leaseB)
        let ack = try XCTUnwrap(VectorCatalog.valid.first { $0.0 == "hello_ack_v2" }?.2)
        XCTAssertEqual(try FrameEncoder().encode(ack), VectorCatalog.frame(.helloAck, ackV2))

        // Versions: svarint(ms - previous ms), uvarint(replica index << 1 | has counter), [counter], [new replica id].
        let push = Bytes()
        push.replica(replicaA).uvarint(0).uvarint(3).uvarint(2)
        push.string("leads").uvarint(3).string("name").string("score").string("stage").uvarint(2)
        push.string("L1").uvarint(1).svarint(Int64(baseMilliseconds)).uvarint(0 << 1 | 0).replica(replicaA).uvarint(3)
        push.uvarint(0 << 4 | 8 | 3).string("Ana")
        push.uvarint(1 << 4 | 8 | 1).svarint(87)
        push.uvarint(2 << 4 | 3).svarint(5).uvarint(1 << 1 | 1).uvarint(1).replica(replicaB).string("demo")
        push.string("L2").uvarint(2).svarint(5).uvarint(1 << 1 | 0).uvarint(0)
        push.string("visits").uvarint(4).string("duration").string("photo").string("rating").string("note").uvarint(1)
        push.string("V1").uvarint(1).svarint(-8).uvarint(0 << 1 | 0).uvarint(4)
        push.uvarint(0 << 4 | 8 | 1).svarint(-42)
        push.uvarint(1 << 4 | 8 | 4).utf8([0x00, 0xff])
        push.uvarint(2 << 4 | 8 | 2).fixed64((4.5 as Double).bitPattern)
        push.uvarint(3 << 4 | 0).svarint(-1).uvarint(0 << 1 | 0)
        XCTAssertEqual(try FrameEncoder().encode(.push(VectorCatalog.smallChangeset)), VectorCatalog.frame(.push, push))

        // PING 300, spelled out byte by byte as in PROTOCOL.md §6.
        XCTAssertEqual(VectorCatalog.pingFrame.count, 15)
        XCTAssertEqual(Array(VectorCatalog.pingFrame.prefix(9)), [0x53, 0x59, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x02])
        XCTAssertEqual(MessageJSON.hex(VectorCatalog.pingFrame), "535901080000000002" + MessageJSON.hex(withCRC(VectorCatalog.pingFrame)) + "ac02")
    }

    private func withCRC(_ frame: [UInt8]) -> [UInt8] {
        let crc = CRC32.checksum(Array(frame.prefix(9)) + Array(frame.dropFirst(13)))
        return [UInt8(crc >> 24), UInt8(truncatingIfNeeded: crc >> 16), UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)]
    }
}
