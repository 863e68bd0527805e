import SyncEngine
import Wire

/// Every test vector of Protocol/vectors, defined here so the files can be regenerated
/// (`STORESYNC_WRITE_VECTORS=1 swift test --filter VectorTests`) and checked byte for byte.
///
/// Valid vectors come from the encoder and are also checked against the hand-written
/// layouts in `testEncoderMatchesHandBuiltPayloads`; invalid ones are hand-built.
struct VectorCase {
    enum Expectation {
        case message(Message)
        case error(ErrorCode)
    }

    let name: String
    let description: String
    let bytes: [UInt8]
    let expectation: Expectation
}

enum VectorCatalog {
    static let sessionLimits = SessionLimits(maxFrameBytes: 16 * 1024 * 1024, maxBatchCells: 10_000, idleTimeoutMilliseconds: 60_000)

    /// Two tables, every value type, cells sharing their row's version and cells with their own,
    /// a second replica introduced mid-batch, and a deleted row.
    static let smallChangeset = Changeset(
        source: replicaA, fromSequence: 0, toSequence: 3,
        tables: [
            TableChanges(table: table("leads"), columns: columns(["name", "score", "stage"]), rows: [
                RowChange(primaryKey: "L1", causalLength: 1, lifeVersion: Version(hlc: hlc(0), origin: replicaA), cells: [
                    Cell(column: 0, value: .text("Ana"), version: Version(hlc: hlc(0), origin: replicaA)),
                    Cell(column: 1, value: .integer(87), version: Version(hlc: hlc(0), origin: replicaA)),
                    Cell(column: 2, value: .text("demo"), version: Version(hlc: hlc(5, 1), origin: replicaB)),
                ]),
                RowChange(primaryKey: "L2", causalLength: 2, lifeVersion: Version(hlc: hlc(10), origin: replicaB), cells: []),
            ]),
            TableChanges(table: table("visits"), columns: columns(["duration", "photo", "rating", "note"]), rows: [
                RowChange(primaryKey: "V1", causalLength: 1, lifeVersion: Version(hlc: hlc(2), origin: replicaA), cells: [
                    Cell(column: 0, value: .integer(-42), version: Version(hlc: hlc(2), origin: replicaA)),
                    Cell(column: 1, value: .blob([0x00, 0xff]), version: Version(hlc: hlc(2), origin: replicaA)),
                    Cell(column: 2, value: .real(4.5), version: Version(hlc: hlc(2), origin: replicaA)),
                    Cell(column: 3, value: .null, version: Version(hlc: hlc(1), origin: replicaA)),
                ]),
            ]),
        ]
    )

    static let edgeChangeset = Changeset(
        source: .none, fromSequence: UInt64.max - 1, toSequence: UInt64.max,
        tables: [
            // One column per cell: a cell names each column of its row at most once (§4).
            TableChanges(table: table("edge_values"), columns: columns(["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]), rows: [
                RowChange(primaryKey: "", causalLength: UInt64.max, lifeVersion: Version(hlc: HLCTimestamp(rawValue: UInt64.max), origin: ReplicaID(high: UInt64.max, low: UInt64.max)), cells: [
                    Cell(column: 0, value: .integer(Int64.min), version: .zero),
                    Cell(column: 1, value: .integer(Int64.max), version: Version(hlc: HLCTimestamp(rawValue: UInt64.max), origin: .none)),
                    Cell(column: 2, value: .real(-0.0), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                    Cell(column: 3, value: .real(.nan), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                    Cell(column: 4, value: .real(-.infinity), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                    Cell(column: 5, value: .text(""), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                    Cell(column: 6, value: .text("café ☕️ 北京"), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                    Cell(column: 7, value: .blob([]), version: Version(hlc: HLCTimestamp(rawValue: 1), origin: .none)),
                ]),
            ]),
        ]
    )

    static var valid: [(String, String, Message)] {
        [
            ("hello_terminal", "A terminal opens a session for one store with a credentials token.",
             .hello(Hello(protocolVersions: [1], replica: replicaA, role: .terminal, scope: "store:S001", clock: hlc(0, 7), credentials: Array("tok".utf8)))),
            ("hello_hub_two_versions", "A regional hub, speaking versions 2 and 1, connects to HQ with no credentials and presents the lease HQ issued it last time.",
             .hello(Hello(protocolVersions: [2, 1], replica: replicaHub, role: .hub, scope: "region:north", clock: hlc(1), credentials: [],
                          lease: leaseA))),
            ("hello_v2_first_contact", "A version 2 terminal that holds no lease from this server yet: an empty lease.",
             .hello(Hello(protocolVersions: [2, 1], replica: replicaA, role: .terminal, scope: "store:S001", clock: hlc(0, 7), credentials: Array("tok".utf8)))),
            ("hello_ack", "The hub accepts version 1 and says where the client's pushes resume.",
             .helloAck(HelloAck(protocolVersion: 1, replica: replicaHub, clock: hlc(3, 2), pushCursor: 41, latestSequence: 1_000, limits: sessionLimits))),
            ("hello_ack_v2", "The hub accepts version 2: allowed clock drift 5 minutes, and the new lease the client stores before anything else.",
             .helloAck(HelloAck(protocolVersion: 2, replica: replicaHub, clock: hlc(3, 2), pushCursor: 41, latestSequence: 1_000, limits: sessionLimits,
                                maxClockDriftMilliseconds: 300_000, lease: leaseB))),
            ("push_small", "Two tables, all five value types, shared and own cell versions, a deleted row.",
             .push(smallChangeset)),
            ("push_empty", "A batch with nothing in it: only moves the cursor.",
             .push(Changeset(source: replicaA, fromSequence: 7, toSequence: 7, tables: []))),
            ("push_edge_values", "Extreme integers, -0.0, NaN, -infinity, empty and non-ASCII text, empty blob, extreme versions and sequences.",
             .push(edgeChangeset)),
            ("push_ack", "The hub has applied the client's changes up to sequence 3.",
             .pushAck(acknowledgedSequence: 3)),
            ("pull_live", "Changes after cursor 42, at most 10000 cells, then stay live.",
             .pull(Pull(fromSequence: 42, maxCells: 10_000, live: true))),
            ("pull_batch_more", "A batch with more waiting after it.",
             .pullBatch(PullBatch(more: true, changeset: smallChangeset))),
            ("pull_batch_caught_up", "Nothing new: an empty batch whose cursor does not move, more = false.",
             .pullBatch(PullBatch(more: false, changeset: Changeset(source: replicaHub, fromSequence: 99, toSequence: 99, tables: [])))),
            ("notify", "Live mode: the hub's latest sequence is now 100.",
             .notify(latestSequence: 100)),
            ("ping", "Keep-alive with a nonce above 2^53 (a string in the JSON).",
             .ping(nonce: (1 << 63) + 5)),
            ("pong", "Answer to a PING with nonce 7.",
             .pong(nonce: 7)),
            ("view_request", "Sales by store for one region since a date.",
             .viewRequest(ViewRequest(requestID: 1, view: "sales_by_store", parameters: [ViewParameter(name: "region", value: "north"), ViewParameter(name: "from", value: "2026-01-01")]))),
            ("view_rows_final", "The last chunk of an answer, with a null.",
             .viewRows(ViewRows(requestID: 1, final: true, columns: ["store", "day", "total"], rows: [
                [.text("S001"), .text("2026-01-01"), .real(1234.5)],
                [.text("S002"), .text("2026-01-01"), .null],
             ]))),
            ("view_rows_empty_partial", "A chunk with no rows that is not the last one.",
             .viewRows(ViewRows(requestID: 9, final: false, columns: ["x"], rows: []))),
            ("error_clock_skew", "CLOCK_SKEW with the hub's clock so the client can adopt it.",
             .error(ErrorMessage(code: .clockSkew, message: "remote version 600000 ms ahead", serverClock: hlc(4), retryAfterMilliseconds: nil))),
            ("error_server_busy", "SERVER_BUSY: retry after 5 s.",
             .error(ErrorMessage(code: .serverBusy, message: "busy", serverClock: nil, retryAfterMilliseconds: 5_000))),
            ("error_replica_conflict", "REPLICA_CONFLICT: the lease presented is not this replica id's; no retry.",
             .error(ErrorMessage(code: .replicaConflict, message: "replica id held by another database: run storesync reidentify", serverClock: nil, retryAfterMilliseconds: nil))),
            ("error_bad_view_parameter", "BAD_VIEW_PARAMETER: a known view with a malformed parameter.",
             .error(ErrorMessage(code: .badViewParameter, message: "view sales_by_store: parameter from is not a date", serverClock: nil, retryAfterMilliseconds: nil))),
            ("error_invalid_value", "INVALID_VALUE: names table, column and reason, never the value.",
             .error(ErrorMessage(code: .invalidValue, message: "sales.quantity: not an integer", serverClock: nil, retryAfterMilliseconds: nil))),
            ("error_unknown_code", "A code this version does not define still decodes (a newer peer's).",
             .error(ErrorMessage(code: ErrorCode(rawValue: 999), message: "", serverClock: nil, retryAfterMilliseconds: nil))),
        ]
    }

    static let leaseA: [UInt8] = Array(0xa0...0xaf)
    static let leaseB: [UInt8] = Array(0xb0...0xbf)

    /// A HELLO listing versions 2 and 1, up to (and including) its credentials.
    static func helloV2Prefix() -> Bytes {
        Bytes().uvarint(2).uvarint(2).uvarint(1).replica(replicaA).byte(0).string("store:S001").fixed64(0).uvarint(0)
    }

    /// A version 2 HELLO_ACK up to (and including) its idle timeout.
    static func helloAckV2Prefix() -> Bytes {
        Bytes().uvarint(2).replica(replicaHub).fixed64(0).uvarint(41).uvarint(1_000).uvarint(1 << 24).uvarint(10_000).uvarint(60_000)
    }

    static func frame(_ type: MessageType, _ payload: Bytes, flags: UInt8 = 0) -> [UInt8] {
        WireFormat.frame(type: type.rawValue, flags: flags, payload: payload.bytes)
    }

    static let pingFrame = WireFormat.frame(type: MessageType.ping.rawValue, payload: [0xac, 0x02]) // nonce 300

    /// A header declaring `length` payload bytes, with no payload.
    static func header(length: UInt32) -> [UInt8] {
        [0x53, 0x59, 0x01, MessageType.push.rawValue, 0x00,
         UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
         0, 0, 0, 0]
    }

    /// A PUSH payload up to (and including) the first row's life version, for one table with
    /// one column `v`; `cells` is appended after the cell count.
    static func pushPayload(table: String = "t", cellCount: UInt64 = 1, cells: (Bytes) -> Void) -> Bytes {
        let bytes = Bytes()
        bytes.replica(replicaA).uvarint(0).uvarint(1).uvarint(1)
        bytes.string(table).uvarint(1).string("v").uvarint(1)
        bytes.string("k").uvarint(1).svarint(5).uvarint(0).replica(replicaA) // life version: 5 ms, counter 0, new replica A at index 0
        bytes.uvarint(cellCount)
        cells(bytes)
        return bytes
    }

    static var invalid: [(String, String, [UInt8], ErrorCode)] {
        var flippedChecksum = pingFrame
        flippedChecksum[12] ^= 0x01
        var flippedPayload = pingFrame
        flippedPayload[13] ^= 0x40
        var badVersion = pingFrame
        badVersion[2] = 2
        return [
            ("bad_magic_http", "An HTTP request instead of a frame: refused after two bytes.", Array("GET / HTTP/1.1\r\n\r\n".utf8), .badMagic),
            ("bad_frame_version", "Frame format 2 is unknown to a format-1 reader.", badVersion, .unsupportedVersion),
            ("bad_checksum_header", "The stored checksum has one bit flipped.", flippedChecksum, .badChecksum),
            ("bad_checksum_payload", "One payload bit flipped in transit.", flippedPayload, .badChecksum),
            ("truncated_header", "The stream ends after 7 of the 13 header bytes.", Array(pingFrame.prefix(7)), .truncated),
            ("truncated_body", "The stream ends one byte before the end of the payload.", Array(pingFrame.dropLast()), .truncated),
            ("length_over_cap", "A payload length of 16 MiB + 1: refused from the header alone.", header(length: 16 * 1024 * 1024 + 1), .tooLarge),
            ("length_2_31", "A payload length of 2^31.", header(length: 1 << 31), .tooLarge),
            ("length_max", "A payload length of 2^32 - 1.", header(length: UInt32.max), .tooLarge),
            ("unknown_type", "Message type 0x63 does not exist in version 1.", WireFormat.frame(type: 0x63, payload: []), .unknownMessageType),
            ("unknown_type_zero", "Message type 0 is reserved.", WireFormat.frame(type: 0x00, payload: [0x01]), .unknownMessageType),
            ("reserved_flags", "A PING with flag bit 0 set: no flag is defined in format 1.", frame(.ping, Bytes().uvarint(1), flags: 0x01), .badFrame),
            ("bad_varint_overlong", "Nonce 0 written in two bytes (80 00): only the shortest form is valid.", frame(.ping, Bytes().raw([0x80, 0x00])), .badVarint),
            ("bad_varint_overflow", "A 10-byte varint above 2^64 - 1.", frame(.ping, Bytes().raw([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])), .badVarint),
            ("bad_varint_eleven_bytes", "A varint that does not end within 10 bytes.", frame(.ping, Bytes().raw([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), .badVarint),
            ("varint_past_payload", "A varint whose continuation bit runs past the payload.", frame(.ping, Bytes().raw([0x80])), .badFrame),
            ("empty_payload", "A PING with a zero-length payload: its nonce is missing.", frame(.ping, Bytes()), .badFrame),
            ("trailing_bytes", "A PING with a byte after its last field.", frame(.ping, Bytes().uvarint(1).byte(0)), .badFrame),
            ("invalid_utf8_scope", "HELLO whose scope is FF FE.",
             frame(.hello, Bytes().uvarint(1).uvarint(1).replica(replicaA).byte(0).utf8([0xff, 0xfe]).fixed64(0).uvarint(0)), .invalidUTF8),
            ("invalid_utf8_overlong", "A primary key C0 AF (an overlong '/').",
             frame(.push, {
                 let bytes = Bytes()
                 bytes.replica(replicaA).uvarint(0).uvarint(1).uvarint(1).string("t").uvarint(0).uvarint(1).utf8([0xc0, 0xaf])
                 return bytes
             }()), .invalidUTF8),
            ("invalid_utf8_surrogate", "A view name containing an encoded surrogate (ED A0 80).",
             frame(.viewRequest, Bytes().uvarint(1).utf8([0x61, 0xed, 0xa0, 0x80]).uvarint(0)), .invalidUTF8),
            ("invalid_table_name", "Table names are [a-z_][a-z0-9_]*: 'Leads' is not.", frame(.push, pushPayload(table: "Leads", cellCount: 0) { _ in }), .invalidName),
            ("reserved_table_prefix", "Table names never start with sync_.", frame(.push, pushPayload(table: "sync_log", cellCount: 0) { _ in }), .invalidName),
            ("unknown_value_tag", "A cell with value tag 5.", frame(.push, pushPayload { $0.uvarint(0 << 4 | 1 << 3 | 5) }), .badFrame),
            ("cell_column_out_of_range", "A cell naming column 1 of a one-column table.", frame(.push, pushPayload { $0.uvarint(1 << 4 | 1 << 3 | 0) }), .badFrame),
            ("replica_index_beyond_table", "A cell version naming replica index 2 when the table has 1 entry.",
             frame(.push, pushPayload { $0.uvarint(0).svarint(1).uvarint(2 << 1) }), .badFrame),
            ("replica_defined_twice", "A cell version that adds replica A to the table a second time.",
             frame(.push, pushPayload { $0.uvarint(0).svarint(1).uvarint(1 << 1).replica(replicaA) }), .badFrame),
            ("version_counter_zero_flagged", "A version whose has-counter bit is set with a counter of 0.",
             frame(.push, pushPayload { $0.uvarint(0).svarint(1).uvarint(0 << 1 | 1).uvarint(0) }), .badFrame),
            ("version_counter_too_large", "A version counter of 65536 (counters are 16 bits).",
             frame(.push, pushPayload { $0.uvarint(0).svarint(1).uvarint(0 << 1 | 1).uvarint(65_536) }), .badFrame),
            ("version_milliseconds_negative", "A version whose milliseconds fall below 0 (previous 5, delta -6).",
             frame(.push, pushPayload { $0.uvarint(0).svarint(-6).uvarint(0) }), .badFrame),
            ("explicit_version_equal_previous", "A cell that spells out its row's version instead of setting the same-version flag.",
             frame(.push, pushPayload { $0.uvarint(0).svarint(0).uvarint(0) }), .badFrame),
            ("bool_not_0_or_1", "PULL whose live flag is 2.", frame(.pull, Bytes().uvarint(0).uvarint(0).byte(2)), .badFrame),
            ("unknown_role", "HELLO with role 3.",
             frame(.hello, Bytes().uvarint(1).uvarint(1).replica(replicaA).byte(3).string("s").fixed64(0).uvarint(0)), .badFrame),
            ("protocol_version_out_of_range", "HELLO offering protocol version 70000 (above 65535).",
             frame(.hello, Bytes().uvarint(1).uvarint(70_000).replica(replicaA).byte(0).string("s").fixed64(0).uvarint(0)), .badFrame),
            ("count_exceeds_payload", "VIEW_REQUEST declaring 1000 parameters in a few bytes.",
             frame(.viewRequest, Bytes().uvarint(1).string("v").uvarint(1_000).string("a").string("b")), .badFrame),
            ("view_rows_without_columns", "VIEW_ROWS with rows but no columns.",
             frame(.viewRows, Bytes().uvarint(1).byte(1).uvarint(0).uvarint(3).raw([0, 0, 0])), .badFrame),
            ("error_presence_byte", "ERROR whose server-clock presence byte is 2.",
             frame(.error, Bytes().uvarint(36).string("x").byte(2)), .badFrame),
            ("hello_lease_wrong_length", "A version 2 HELLO whose lease is 15 bytes (it is 0 or 16).",
             frame(.hello, helloV2Prefix().utf8(Array(leaseA.prefix(15)))), .badFrame),
            ("hello_v2_without_lease", "A HELLO listing version 2 that ends before its lease field.",
             frame(.hello, helloV2Prefix()), .badFrame),
            ("hello_v1_with_lease", "A HELLO listing only version 1 followed by a lease: trailing bytes.",
             frame(.hello, Bytes().uvarint(1).uvarint(1).replica(replicaA).byte(0).string("store:S001").fixed64(0).uvarint(0).utf8(leaseA)), .badFrame),
            ("hello_ack_v2_empty_lease", "A version 2 HELLO_ACK whose lease is empty (it is always 16 bytes).",
             frame(.helloAck, helloAckV2Prefix().uvarint(300_000).uvarint(0)), .badFrame),
            ("hello_ack_v2_without_drift", "A version 2 HELLO_ACK that ends after the version 1 fields.",
             frame(.helloAck, helloAckV2Prefix()), .badFrame),
            ("duplicate_table", "A changeset naming table t twice.",
             frame(.push, Bytes().replica(replicaA).uvarint(0).uvarint(1).uvarint(2)
                .string("t").uvarint(0).uvarint(0).string("t").uvarint(0).uvarint(0)), .badFrame),
            ("duplicate_column", "A table listing column v twice.",
             frame(.push, Bytes().replica(replicaA).uvarint(0).uvarint(1).uvarint(1).string("t").uvarint(2).string("v").string("v").uvarint(0)), .badFrame),
            ("duplicate_cell", "A row with two cells for column 0 (both with the row's version).",
             frame(.push, pushPayload(cellCount: 2) { $0.uvarint(0 << 4 | 1 << 3 | 0).uvarint(0 << 4 | 1 << 3 | 0) }), .badFrame),
        ]
    }

    static var all: [VectorCase] {
        let encoder = FrameEncoder()
        var cases: [VectorCase] = []
        for (name, description, message) in valid {
            // The catalog's messages are valid by construction.
            guard let bytes = try? encoder.encode(message) else { fatalError("vector \(name) does not encode") }
            cases.append(VectorCase(name: name, description: description, bytes: bytes, expectation: .message(message)))
        }
        for (name, description, bytes, code) in invalid {
            cases.append(VectorCase(name: name, description: description, bytes: bytes, expectation: .error(code)))
        }
        return cases
    }
}
