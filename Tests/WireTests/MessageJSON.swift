import Foundation
import SyncEngine
import Wire

/// The "decoded meaning" of a message as written in the vector files (Protocol/vectors/README.md).
///
/// Integers are JSON numbers up to 2^53 and decimal strings above, so that readers in languages
/// whose JSON numbers are doubles lose nothing; reals carry their exact bit pattern.
enum MessageJSON {
    static func object(_ message: Message) -> [String: Any] {
        var object: [String: Any] = ["type": message.type.description]
        switch message {
        case .hello(let hello):
            object["protocol_versions"] = hello.protocolVersions.map { Int($0) }
            object["replica"] = hello.replica.description
            object["role"] = hello.role.description
            object["scope"] = hello.scope
            object["clock"] = hlc(hello.clock)
            object["credentials"] = hex(hello.credentials)
            if hello.carriesLease { object["lease"] = hex(hello.lease) }
        case .helloAck(let ack):
            object["protocol_version"] = Int(ack.protocolVersion)
            object["replica"] = ack.replica.description
            object["clock"] = hlc(ack.clock)
            object["push_cursor"] = integer(ack.pushCursor)
            object["latest_sequence"] = integer(ack.latestSequence)
            object["limits"] = [
                "max_frame_bytes": Int(ack.limits.maxFrameBytes),
                "max_batch_cells": Int(ack.limits.maxBatchCells),
                "idle_timeout_ms": Int(ack.limits.idleTimeoutMilliseconds),
            ]
            if let drift = ack.maxClockDriftMilliseconds { object["max_clock_drift_ms"] = Int(drift) }
            if let lease = ack.lease { object["lease"] = hex(lease) }
        case .push(let changeset):
            object["changeset"] = self.changeset(changeset)
        case .pushAck(let sequence):
            object["acknowledged_sequence"] = integer(sequence)
        case .pull(let pull):
            object["from_sequence"] = integer(pull.fromSequence)
            object["max_cells"] = Int(pull.maxCells)
            object["live"] = pull.live
        case .pullBatch(let batch):
            object["more"] = batch.more
            object["changeset"] = changeset(batch.changeset)
        case .notify(let sequence):
            object["latest_sequence"] = integer(sequence)
        case .ping(let nonce), .pong(let nonce):
            object["nonce"] = integer(nonce)
        case .viewRequest(let request):
            object["request_id"] = integer(request.requestID)
            object["view"] = request.view
            object["parameters"] = request.parameters.map { ["name": $0.name, "value": $0.value] }
        case .viewRows(let rows):
            object["request_id"] = integer(rows.requestID)
            object["final"] = rows.final
            object["columns"] = rows.columns
            object["rows"] = rows.rows.map { $0.map(value) }
        case .error(let error):
            object["code"] = Int(error.code.rawValue)
            object["code_name"] = error.code.name
            object["message"] = error.message
            object["server_clock"] = error.serverClock.map(hlc) ?? NSNull()
            object["retry_after_ms"] = error.retryAfterMilliseconds.map { Int($0) as Any } ?? NSNull()
        }
        return object
    }

    static func changeset(_ changeset: Changeset) -> [String: Any] {
        [
            "source": changeset.source.description,
            "from_sequence": integer(changeset.fromSequence),
            "to_sequence": integer(changeset.toSequence),
            "tables": changeset.tables.map { table in
                [
                    "table": table.table.rawValue,
                    "columns": table.columns.map(\.rawValue),
                    "rows": table.rows.map { row in
                        [
                            "primary_key": row.primaryKey,
                            "causal_length": integer(row.causalLength),
                            "life_version": version(row.lifeVersion),
                            "cells": row.cells.map { cell in
                                ["column": cell.column, "value": value(cell.value), "version": version(cell.version)] as [String: Any]
                            },
                        ] as [String: Any]
                    },
                ] as [String: Any]
            },
        ]
    }

    static func version(_ version: Version) -> [String: Any] {
        ["hlc": hlc(version.hlc), "origin": version.origin.description]
    }

    static func hlc(_ hlc: HLCTimestamp) -> [String: Any] {
        ["ms": Int(hlc.milliseconds), "counter": Int(hlc.counter)]
    }

    static func value(_ value: Value) -> [String: Any] {
        switch value {
        case .null: return ["type": "null"]
        case .integer(let integer):
            let safe: Int64 = 1 << 53
            return ["type": "integer", "value": (-safe...safe).contains(integer) ? Int(integer) as Any : String(integer)]
        case .real(let real):
            return ["type": "real", "bits": String(real.bitPattern, radix: 16), "value": "\(real)"]
        case .text(let text): return ["type": "text", "value": text]
        case .blob(let blob): return ["type": "blob", "hex": hex(blob)]
        }
    }

    static func integer(_ value: UInt64) -> Any {
        value <= 1 << 53 ? Int(value) as Any : String(value)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = 0
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// Stable text for comparing two JSON values.
    static func canonical(_ object: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }
}
