import Foundation
import SyncEngine
import Wire

/// `storesync-bench wire`: the codec's figures for issue 3's targets.
///
/// - encode+decode throughput of one 10,000-cell changeset frame (target ≥ 200 MB/s), counting
///   the frame's bytes once per encode+decode round trip;
/// - framing overhead per frame (target ≤ 16 bytes);
/// - metadata bytes per cell beyond its value and its row's primary key (target ≤ 8): everything
///   in the frame except the primary keys' UTF-8 bytes and the values' own bytes (varint of an
///   integer, 8 bytes of a real, the UTF-8 of a text, the bytes of a blob; a null has none).
///   Tags, length prefixes, column indices, versions, row headers, names, replica ids and the
///   frame header all count as metadata.
///
/// Two batches: one of inserts (every cell shares its row's version, the common case) and one of
/// updates (every cell has its own version: the worst case for version metadata).
enum WireBenchmark {
    static let cellTarget = 10_000
    static let throughputTarget = 200.0
    static let metadataTarget = 8.0
    static let framingTarget = 16

    struct Result {
        var scenario: String
        var cells: Int
        var frameBytes: Int
        var framingBytes: Int
        var metadataPerCell: Double
        var encodeSeconds: Double
        var decodeSeconds: Double

        var roundTripMBPerSecond: Double { Double(frameBytes) / (encodeSeconds + decodeSeconds) / 1_000_000 }
        var encodeMBPerSecond: Double { Double(frameBytes) / encodeSeconds / 1_000_000 }
        var decodeMBPerSecond: Double { Double(frameBytes) / decodeSeconds / 1_000_000 }
        var batchesPerSecond: Double { 1 / (encodeSeconds + decodeSeconds) }
    }

    enum Failure: Error, CustomStringConvertible {
        case roundTripMismatch(String)
        var description: String {
            switch self {
            case .roundTripMismatch(let scenario): return "wire benchmark \(scenario): decoded batch differs from the encoded one"
            }
        }
    }

    static func run(json: Bool) throws {
        let results = [
            try measure(scenario: "wire_10k_cells_inserts", changeset: batch(sharedVersions: true)),
            try measure(scenario: "wire_10k_cells_updates", changeset: batch(sharedVersions: false)),
        ]
        if json {
            for result in results { print(jsonLine(result)) }
        } else {
            print("wire codec: one changeset frame of \(cellTarget) cells, best of 5 rounds of thread CPU time")
            print(pad("scenario", 26) + pad("frame B", 10, right: true) + pad("enc+dec MB/s", 14, right: true)
                  + pad("enc MB/s", 10, right: true) + pad("dec MB/s", 10, right: true)
                  + pad("framing B", 11, right: true) + pad("meta B/cell", 13, right: true))
            for result in results {
                print(pad(result.scenario, 26) + pad("\(result.frameBytes)", 10, right: true)
                      + pad(String(format: "%.0f", result.roundTripMBPerSecond), 14, right: true)
                      + pad(String(format: "%.0f", result.encodeMBPerSecond), 10, right: true)
                      + pad(String(format: "%.0f", result.decodeMBPerSecond), 10, right: true)
                      + pad("\(result.framingBytes)", 11, right: true)
                      + pad(String(format: "%.2f", result.metadataPerCell), 13, right: true))
            }
            print(String(format: "targets: enc+dec ≥ %.0f MB/s, framing ≤ %d B/frame, metadata ≤ %.0f B/cell", throughputTarget, framingTarget, metadataTarget))
        }
        fflush(nil)
    }

    static func measure(scenario: String, changeset: Changeset) throws -> Result {
        let message = Message.push(changeset)
        let encoder = FrameEncoder()
        let frame = try encoder.encode(message)
        guard case .push(let decoded) = try FrameDecoder.decodeFrame(frame), decoded == changeset else {
            throw Failure.roundTripMismatch(scenario)
        }
        let payloadBytes = try payloadLength(frame)
        var valueAndKeyBytes = 0
        for table in changeset.tables {
            for row in table.rows {
                valueAndKeyBytes += row.primaryKey.utf8.count
                for cell in row.cells { valueAndKeyBytes += valueBytes(cell.value) }
            }
        }
        let cells = changeset.cellCount

        // Best of 5 rounds, each long enough (~50 iterations) to swamp timer resolution.
        // Timed in this thread's CPU time, not wall time, so that other work on the machine
        // (builds, a fuzzer) does not count; page faults and allocation still do.
        // Like a connection: the sender reuses its output buffer and the receiver keeps one
        // decoder, so the figures are not dominated by mapping fresh 150 KB buffers each time.
        let iterations = 50
        var bestEncode = Double.infinity
        var bestDecode = Double.infinity
        var sink = 0
        var output: [UInt8] = []
        output.reserveCapacity(frame.count)
        var decoder = FrameDecoder()
        for _ in 0..<5 {
            let encodeStart = threadCPUNanoseconds()
            for _ in 0..<iterations {
                output.removeAll(keepingCapacity: true)
                try encoder.encode(message, appendingTo: &output)
                sink &+= output.count
            }
            let encodeEnd = threadCPUNanoseconds()
            for _ in 0..<iterations {
                decoder.feed(frame)
                if case .push(let batch) = try decoder.next() { sink &+= batch.tables.count }
            }
            let decodeEnd = threadCPUNanoseconds()
            bestEncode = min(bestEncode, Double(encodeEnd - encodeStart) / 1e9 / Double(iterations))
            bestDecode = min(bestDecode, Double(decodeEnd - encodeEnd) / 1e9 / Double(iterations))
        }
        // Keeps the loops' results observable so the optimiser cannot drop them.
        if sink == 42 { print("") }
        return Result(
            scenario: scenario, cells: cells, frameBytes: frame.count, framingBytes: frame.count - payloadBytes,
            metadataPerCell: Double(frame.count - valueAndKeyBytes) / Double(cells),
            encodeSeconds: bestEncode, decodeSeconds: bestDecode
        )
    }

    /// A hub relaying 2,000 leads-like rows of 5 columns from 40 terminals: ULID-like keys,
    /// short texts, integers, a real. Inserts share the row's version; updates do not.
    static func batch(sharedVersions: Bool) -> Changeset {
        var generator = SplitMix64(seed: 20_260_101)
        let origins = (0..<40).map { _ in ReplicaID(high: generator.next(), low: generator.next()) }
        let stages = ["reached", "needs_confirmed", "demo", "negotiation", "won", "lost"]
        let names = ["Ana Silva", "Bo Chen", "Carla Mendes", "Dmitri Ivanov", "Eun-ji Park", "Farah Haddad"]
        let base: UInt64 = 1_767_225_600_000
        let columnNames = ["customer_name", "score", "stage", "next_action_due", "amount"].compactMap { try? ColumnName($0) }
        let rowCount = cellTarget / columnNames.count
        var rows: [RowChange] = []
        rows.reserveCapacity(rowCount)
        for index in 0..<rowCount {
            let milliseconds = base + UInt64(index) * 1_500 + generator.next() % 1_000
            let life = Version(hlc: HLCTimestamp(milliseconds: milliseconds, counter: 0), origin: origins[Int(generator.next() % 40)])
            let key = String(format: "01JGZ%021llX", UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            let values: [Value] = [
                .text(names[index % names.count]),
                .integer(Int64(generator.next() % 101)),
                .text(stages[index % stages.count]),
                .integer(Int64(milliseconds + 48 * 3_600_000)),
                .real(Double(generator.next() % 100_000) / 100),
            ]
            var cells: [Cell] = []
            cells.reserveCapacity(values.count)
            for (column, value) in values.enumerated() {
                let version = sharedVersions
                    ? life
                    : Version(hlc: HLCTimestamp(milliseconds: milliseconds + 60_000 + generator.next() % 86_400_000, counter: UInt16(generator.next() % 4)),
                              origin: origins[Int(generator.next() % 40)])
                cells.append(Cell(column: column, value: value, version: version))
            }
            rows.append(RowChange(primaryKey: key, causalLength: 1, lifeVersion: life, cells: cells))
        }
        let table = (try? TableName("leads")).map { [TableChanges(table: $0, columns: columnNames, rows: rows)] } ?? []
        return Changeset(source: origins[0], fromSequence: 1_000_000, toSequence: 1_000_000 + UInt64(rowCount), tables: table)
    }

    static func threadCPUNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    static func valueBytes(_ value: Value) -> Int {
        switch value {
        case .null: return 0
        case .integer(let integer):
            var zigzag = UInt64(bitPattern: (integer << 1) ^ (integer >> 63))
            var count = 1
            while zigzag >= 0x80 { zigzag >>= 7; count += 1 }
            return count
        case .real: return 8
        case .text(let text): return text.utf8.count
        case .blob(let blob): return blob.count
        }
    }

    /// The payload length from the frame header (bytes 5–8, big-endian).
    static func payloadLength(_ frame: [UInt8]) throws -> Int {
        guard frame.count >= WireFormat.headerSize else { throw Failure.roundTripMismatch("short frame") }
        return frame[5..<9].reduce(0) { $0 << 8 | Int($1) }
    }

    static func jsonLine(_ result: Result) -> String {
        let fields = [
            "\"scenario\":\"\(result.scenario)\"",
            "\"unit\":\"MB/s\"",
            "\"mb_per_s\":\(String(format: "%.1f", result.roundTripMBPerSecond))",
            "\"ops_per_s\":\(Int(result.batchesPerSecond.rounded()))",
            "\"encode_mb_per_s\":\(String(format: "%.1f", result.encodeMBPerSecond))",
            "\"decode_mb_per_s\":\(String(format: "%.1f", result.decodeMBPerSecond))",
            "\"cells\":\(result.cells)",
            "\"frame_bytes\":\(result.frameBytes)",
            "\"framing_bytes_per_frame\":\(result.framingBytes)",
            "\"metadata_bytes_per_cell\":\(String(format: "%.3f", result.metadataPerCell))",
            "\"target_mb_per_s\":\(Int(throughputTarget))",
            "\"target_framing_bytes\":\(framingTarget)",
            "\"target_metadata_bytes_per_cell\":\(Int(metadataTarget))",
        ]
        return "{" + fields.joined(separator: ",") + "}"
    }

    private static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}

