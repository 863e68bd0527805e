import SyncEngine
import Wire
import XCTest

final class CodecTests: XCTestCase {
    func testCRC32CheckValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        // The sliced path against the bytewise definition, across lengths and alignments.
        var generator = SplitMix64(seed: 7)
        for length in 0..<80 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = (crc & 1) != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            XCTAssertEqual(CRC32.checksum(bytes), ~crc, "length \(length)")
        }
    }

    func testUTF8ValidationAgreesWithTheStandardLibrary() {
        var generator = SplitMix64(seed: 0x07F8)
        // Bytes biased towards the interesting ranges: ASCII, continuations, every lead byte.
        let pool: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                             0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        for round in 0..<20_000 {
            let length = Int(generator.next() % 12)
            let bytes: [UInt8] = (0..<length).map { _ in
                generator.next() % 3 == 0 ? UInt8(truncatingIfNeeded: generator.next()) : pool[Int(generator.next() % UInt64(pool.count))]
            }
            let ours = bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) }
            XCTAssertEqual(ours, String(validating: bytes, as: UTF8.self) != nil, "round \(round): \(bytes)")
        }
        for text in ["", "plain ascii longer than eight bytes", "café ☕️ 北京 𝄞", "\u{10FFFF}", "\u{D7FF}\u{E000}"] {
            XCTAssertTrue(Array(text.utf8).withUnsafeBufferPointer { UTF8Validation.isValid($0) }, text)
        }
    }

    func testRandomChangesetsRoundTrip() throws {
        for seed in UInt64(1)...300 {
            var generator = SplitMix64(seed: seed)
            let changeset = randomChangeset(using: &generator)
            let more = Bool.random(using: &generator)
            for message in [Message.push(changeset), .pullBatch(PullBatch(more: more, changeset: changeset))] {
                let bytes = try FrameEncoder().encode(message)
                let decoded = try FrameDecoder.decodeFrame(bytes)
                XCTAssertEqual(decoded, message, "seed \(seed)")
                XCTAssertEqual(try FrameEncoder().encode(decoded), bytes, "seed \(seed)")
                let chunked = decodeStream(bytes, chunkSizes: randomChunks(bytes.count, using: &generator))
                XCTAssertEqual(chunked.messages, [message], "seed \(seed)")
                XCTAssertNil(chunked.error, "seed \(seed)")
            }
        }
    }

    func testEncoderRefusesWhatTheDecoderWould() {
        let bad = Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [
            TableChanges(table: table("t"), columns: columns(["a"]), rows: [
                RowChange(primaryKey: "k", causalLength: 1, lifeVersion: .zero, cells: [Cell(column: 1, value: .null, version: .zero)]),
            ]),
        ])
        XCTAssertThrowsError(try FrameEncoder().encode(.push(bad))) { error in
            XCTAssertEqual((error as? WireError)?.code, .badFrame)
        }
        let ragged = ViewRows(requestID: 1, final: true, columns: ["a", "b"], rows: [[.null]])
        XCTAssertThrowsError(try FrameEncoder().encode(.viewRows(ragged))) { error in
            XCTAssertEqual((error as? WireError)?.code, .badFrame)
        }
        var output: [UInt8] = [1, 2, 3]
        XCTAssertThrowsError(try FrameEncoder(maxFrameBytes: 4).encode(.ping(nonce: UInt64.max), appendingTo: &output)) { error in
            XCTAssertEqual((error as? WireError)?.code, .tooLarge)
        }
        XCTAssertEqual(output, [1, 2, 3], "a refused frame leaves the output as it was")
    }

    func testLengthCapIsCheckedFromTheHeaderAlone() throws {
        // 13 header bytes announcing 2^31: refused at once, without waiting for (or buffering) the payload.
        var decoder = FrameDecoder()
        decoder.feed(VectorCatalog.header(length: 1 << 31))
        XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual(($0 as? WireError)?.code, .tooLarge) }
        // A smaller negotiated cap applies the same way.
        var small = FrameDecoder(maxFrameBytes: 100)
        small.feed(VectorCatalog.header(length: 101))
        XCTAssertThrowsError(try small.next()) { XCTAssertEqual(($0 as? WireError)?.code, .tooLarge) }
        var exact = FrameDecoder(maxFrameBytes: 2)
        exact.feed(VectorCatalog.pingFrame)
        XCTAssertEqual(try exact.next(), .ping(nonce: 300))
    }

    func testElementBudgetBoundsMemory() throws {
        // 500 rows of one null cell take a few KB on the wire but far more in memory: the element
        // cap stops that. Elements: 1 table + 1 column + 500 rows + 500 cells = 1002.
        let rows = (0..<500).map { _ in RowChange(primaryKey: "", causalLength: 1, lifeVersion: .zero, cells: [Cell(column: 0, value: .null, version: .zero)]) }
        let changeset = Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [
            TableChanges(table: table("t"), columns: columns(["a"]), rows: rows),
        ])
        let bytes = try FrameEncoder().encode(.push(changeset))
        XCTAssertEqual(decodeStream(bytes, chunkSizes: [], maxElements: 999).error?.code, .tooLarge)
        XCTAssertNil(decodeStream(bytes, chunkSizes: [], maxElements: 1003).error)
    }

    func testDecoderStaysFailedAfterAnError() throws {
        var decoder = FrameDecoder()
        decoder.feed(Array("GE".utf8))
        XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual(($0 as? WireError)?.code, .badMagic) }
        decoder.feed(VectorCatalog.pingFrame)
        XCTAssertThrowsError(try decoder.next()) { XCTAssertEqual(($0 as? WireError)?.code, .badMagic) }
        XCTAssertThrowsError(try decoder.finish()) { XCTAssertEqual(($0 as? WireError)?.code, .badMagic) }
    }

    func testEveryWireErrorHasADistinctSpecCode() {
        let errors: [WireError] = [
            .badFrame("x"), .badMagic, .badChecksum(expected: 0, actual: 1), .unsupportedVersion(2),
            .tooLarge(what: "x", size: 1, maximum: 0), .unknownMessageType(0), .badVarint, .invalidUTF8,
            .truncated(bufferedBytes: 1), .invalidName,
        ]
        let codes = errors.map(\.code)
        XCTAssertEqual(Set(codes).count, errors.count)
        for code in codes { XCTAssertFalse(code.name.hasPrefix("CODE_"), "\(code) has no spec name") }
        XCTAssertEqual(Set(ErrorCode.known.map(\.name)).count, ErrorCode.known.count)
        XCTAssertEqual(Set(ErrorCode.known.map(\.code)).count, ErrorCode.known.count)
    }

    func testLargeBatchAndBufferRelease() throws {
        // Many frames through one decoder, fed in odd chunks: memory is compacted, order kept.
        var generator = SplitMix64(seed: 99)
        var stream: [UInt8] = []
        var expected: [Message] = []
        for index in 0..<200 {
            let message: Message = index % 3 == 0 ? .push(randomChangeset(using: &generator, maxRows: 5)) : .ping(nonce: UInt64(index))
            try FrameEncoder().encode(message, appendingTo: &stream)
            expected.append(message)
        }
        let outcome = decodeStream(stream, chunkSizes: randomChunks(stream.count, using: &generator))
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.messages, expected)
    }
}

/// Protocol version 2's fields (PROTOCOL.md §5.1, §5.2) and the changeset repeat rules (§4).
final class ProtocolVersion2Tests: XCTestCase {
    func testTheCodecSpeaksVersionsOneAndTwo() {
        XCTAssertEqual(WireFormat.supportedProtocolVersions.sorted(), [1, 2])
    }

    func testHelloCarriesALeaseExactlyWhenItListsVersionTwo() throws {
        let lease = [UInt8](repeating: 7, count: 16)
        let v2 = Message.hello(Hello(protocolVersions: [2, 1], replica: replicaA, role: .terminal, scope: "store:S1", clock: hlc(1), credentials: [], lease: lease))
        XCTAssertEqual(try FrameDecoder.decodeFrame(try FrameEncoder().encode(v2)), v2)
        let empty = Message.hello(Hello(protocolVersions: [2], replica: replicaA, role: .terminal, scope: "store:S1", clock: hlc(1), credentials: []))
        XCTAssertEqual(try FrameDecoder.decodeFrame(try FrameEncoder().encode(empty)), empty)
        // A lease the layout cannot carry is refused by the encoder, not silently dropped.
        let v1 = Message.hello(Hello(protocolVersions: [1], replica: replicaA, role: .terminal, scope: "store:S1", clock: hlc(1), credentials: [], lease: lease))
        XCTAssertThrowsError(try FrameEncoder().encode(v1))
        let short = Message.hello(Hello(protocolVersions: [2], replica: replicaA, role: .terminal, scope: "store:S1", clock: hlc(1), credentials: [], lease: [1, 2]))
        XCTAssertThrowsError(try FrameEncoder().encode(short))
    }

    func testHelloAckOfVersionTwoCarriesDriftAndLease() throws {
        let limits = SessionLimits(maxFrameBytes: 1 << 20, maxBatchCells: 100, idleTimeoutMilliseconds: 1_000)
        let v2 = Message.helloAck(HelloAck(protocolVersion: 2, replica: replicaHub, clock: hlc(2), pushCursor: 1, latestSequence: 2, limits: limits,
                                           maxClockDriftMilliseconds: 300_000, lease: [UInt8](repeating: 9, count: 16)))
        XCTAssertEqual(try FrameDecoder.decodeFrame(try FrameEncoder().encode(v2)), v2)
        let missing = Message.helloAck(HelloAck(protocolVersion: 2, replica: replicaHub, clock: hlc(2), pushCursor: 1, latestSequence: 2, limits: limits))
        XCTAssertThrowsError(try FrameEncoder().encode(missing))
        let v1 = Message.helloAck(HelloAck(protocolVersion: 1, replica: replicaHub, clock: hlc(2), pushCursor: 1, latestSequence: 2, limits: limits,
                                           maxClockDriftMilliseconds: 5, lease: [UInt8](repeating: 9, count: 16)))
        XCTAssertThrowsError(try FrameEncoder().encode(v1))
    }

    func testNewErrorCodesHaveTheirSpecNames() {
        XCTAssertEqual(ErrorCode.invalidValue.name, "INVALID_VALUE")
        XCTAssertEqual(ErrorCode.replicaConflict.rawValue, 42)
        XCTAssertEqual(ErrorCode(name: "BAD_VIEW_PARAMETER"), .badViewParameter)
        XCTAssertEqual(ErrorCode.forbidden.rawValue, 44)
        XCTAssertEqual(ErrorCode.enrollmentRefused.rawValue, 45)
        XCTAssertFalse(ErrorCode.replicaConflict.isRetryable)
        XCTAssertTrue(ErrorCode.serverBusy.isRetryable)
        XCTAssertTrue(ErrorCode(rawValue: 999).isRetryable)
    }

    func testTheEncoderRefusesRepeatedTablesColumnsAndCells() {
        let version = Version(hlc: hlc(1), origin: replicaA)
        let row = RowChange(primaryKey: "k", causalLength: 1, lifeVersion: version, cells: [Cell(column: 0, value: .null, version: version)])
        let twice = TableChanges(table: table("t"), columns: columns(["v"]), rows: [row])
        XCTAssertThrowsError(try FrameEncoder().encode(.push(Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [twice, twice]))))
        let columnTwice = TableChanges(table: table("t"), columns: columns(["v", "v"]), rows: [])
        XCTAssertThrowsError(try FrameEncoder().encode(.push(Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [columnTwice]))))
        var cellTwice = row
        cellTwice.cells.append(cellTwice.cells[0])
        let table2 = TableChanges(table: table("t"), columns: columns(["v"]), rows: [cellTwice])
        XCTAssertThrowsError(try FrameEncoder().encode(.push(Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [table2]))))
        // The same column in two different rows is of course fine.
        let two = TableChanges(table: table("t"), columns: columns(["v"]), rows: [row, row])
        XCTAssertNoThrow(try FrameEncoder().encode(.push(Changeset(source: replicaA, fromSequence: 0, toSequence: 1, tables: [two]))))
    }
}
