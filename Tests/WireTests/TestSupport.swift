import Foundation
import SyncEngine
import Wire

/// Builds payloads byte by byte, independently of the codec, for frames the encoder would
/// never produce (invalid vectors) and for checking the encoder against a second writer.
final class Bytes {
    var bytes: [UInt8] = []

    @discardableResult func raw(_ values: [UInt8]) -> Bytes { bytes += values; return self }
    @discardableResult func byte(_ value: UInt8) -> Bytes { bytes.append(value); return self }
    @discardableResult func uvarint(_ value: UInt64) -> Bytes {
        var rest = value
        while rest >= 0x80 { bytes.append(UInt8(rest & 0x7f) | 0x80); rest >>= 7 }
        bytes.append(UInt8(rest))
        return self
    }
    @discardableResult func svarint(_ value: Int64) -> Bytes {
        uvarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }
    @discardableResult func fixed64(_ value: UInt64) -> Bytes {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        return self
    }
    @discardableResult func string(_ value: String) -> Bytes { utf8(Array(value.utf8)) }
    /// A length-prefixed byte string, valid UTF-8 or not.
    @discardableResult func utf8(_ value: [UInt8]) -> Bytes {
        uvarint(UInt64(value.count))
        bytes += value
        return self
    }
    @discardableResult func replica(_ id: ReplicaID) -> Bytes { raw(id.bytes) }
}

/// What a whole byte stream decodes to, fed in the given chunk sizes (the last chunk takes
/// whatever is left): the messages in order, then the error if the stream ends in one.
struct StreamOutcome {
    var messages: [Message] = []
    var error: WireError?
}

func decodeStream(_ bytes: [UInt8], chunkSizes: [Int], maxFrameBytes: Int = WireFormat.maxFrameBytes, maxElements: Int = WireFormat.maxElements) -> StreamOutcome {
    var decoder = FrameDecoder(maxFrameBytes: maxFrameBytes, maxElements: maxElements)
    var outcome = StreamOutcome()
    var offset = 0
    var sizes = chunkSizes.makeIterator()
    do {
        while offset < bytes.count {
            let size = max(1, min(sizes.next() ?? bytes.count, bytes.count - offset))
            decoder.feed(bytes[offset..<(offset + size)])
            offset += size
            while let message = try decoder.next() { outcome.messages.append(message) }
        }
        try decoder.finish()
    } catch {
        outcome.error = error
    }
    return outcome
}

/// Chunk sizes that split `count` bytes at random points.
func randomChunks(_ count: Int, using generator: inout SplitMix64) -> [Int] {
    var sizes: [Int] = []
    var left = count
    while left > 0 {
        let size = Int.random(in: 1...max(1, min(left, 1 + Int(generator.next() % 40))), using: &generator)
        sizes.append(size)
        left -= size
    }
    return sizes
}

/// The repository root, found from this file's path so tests read the committed vectors.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let vectorsDirectory = repositoryRoot.appendingPathComponent("Protocol/vectors")

// MARK: - Fixtures

let replicaA = ReplicaID(high: 0x1111_1111_1111_1111, low: 0x1111_1111_1111_1111)
let replicaB = ReplicaID(high: 0x2222_2222_2222_2222, low: 0x2222_2222_2222_2222)
let replicaHub = ReplicaID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210)
/// 2026-01-01T00:00:00Z.
let baseMilliseconds: UInt64 = 1_767_225_600_000

func hlc(_ millisecondsAfterBase: UInt64, _ counter: UInt16 = 0) -> HLCTimestamp {
    HLCTimestamp(milliseconds: baseMilliseconds + millisecondsAfterBase, counter: counter)
}

func table(_ name: String) -> TableName {
    // Fixture names are literals known to be valid.
    guard let table = try? TableName(name) else { fatalError("invalid fixture table name") }
    return table
}

func columns(_ names: [String]) -> [ColumnName] {
    names.map { name in
        guard let column = try? ColumnName(name) else { fatalError("invalid fixture column name") }
        return column
    }
}

/// A random changeset: several tables, rows with shared and distinct versions, every value type.
func randomChangeset(using generator: inout SplitMix64, maxRows: Int = 20) -> Changeset {
    let replicas = (0..<Int.random(in: 1...4, using: &generator)).map { _ in
        ReplicaID(high: generator.next(), low: generator.next())
    }
    func randomVersion() -> Version {
        Version(
            hlc: HLCTimestamp(rawValue: Bool.random(using: &generator) ? generator.next() : hlc(UInt64.random(in: 0...100_000, using: &generator), UInt16.random(in: 0...3, using: &generator)).rawValue),
            origin: replicas.randomElement(using: &generator) ?? .none
        )
    }
    func randomText() -> String {
        let pool = ["", "a", "lead", "café", "☕️ 北京", "x\u{0}y", String(repeating: "z", count: 200)]
        return pool.randomElement(using: &generator) ?? ""
    }
    func randomValue() -> Value {
        switch Int.random(in: 0..<5, using: &generator) {
        case 0: return .null
        case 1: return .integer(Int64(bitPattern: generator.next()) >> Int64.random(in: 0...63, using: &generator))
        case 2: return .real([0.0, -0.0, 1.5, -2.25e300, .infinity, -.infinity, .leastNonzeroMagnitude, Double(generator.next() % 1000) / 7].randomElement(using: &generator) ?? 0)
        case 3: return .text(randomText())
        default: return .blob((0..<Int.random(in: 0...20, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
    }
    var tables: [TableChanges] = []
    for tableIndex in 0..<Int.random(in: 0...3, using: &generator) {
        let columnNames = columns((0..<Int.random(in: 0...6, using: &generator)).map { "c\($0)" })
        var rows: [RowChange] = []
        for rowIndex in 0..<Int.random(in: 0...maxRows, using: &generator) {
            let life = randomVersion()
            var cells: [Cell] = []
            if !columnNames.isEmpty {
                // Distinct columns in any order: a row names each column at most once (PROTOCOL.md §4).
                let chosen = Array(0..<columnNames.count).shuffled(using: &generator)
                for column in chosen.prefix(Int.random(in: 0...columnNames.count, using: &generator)) {
                    let version = Bool.random(using: &generator) ? life : randomVersion()
                    cells.append(Cell(column: column, value: randomValue(), version: version))
                }
            }
            rows.append(RowChange(primaryKey: "k\(rowIndex)-\(randomText())", causalLength: UInt64.random(in: 1...5, using: &generator), lifeVersion: life, cells: cells))
        }
        tables.append(TableChanges(table: table("t\(tableIndex)"), columns: columnNames, rows: rows))
    }
    let from = generator.next() >> UInt64.random(in: 0...63, using: &generator)
    return Changeset(source: replicas[0], fromSequence: from, toSequence: from &+ UInt64.random(in: 0...1000, using: &generator), tables: tables)
}
