/// A code carried by an ERROR frame, and the code each `WireError` maps to.
///
/// A struct rather than an enum so a code added by a newer peer still decodes (and is
/// treated as fatal, like every error), instead of failing the frame that reports it.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // Codec errors: produced by `FrameDecoder` / the encoder (see WireError).
    public static let badFrame = ErrorCode(rawValue: 1)
    public static let badMagic = ErrorCode(rawValue: 2)
    public static let badChecksum = ErrorCode(rawValue: 3)
    public static let unsupportedVersion = ErrorCode(rawValue: 4)
    public static let tooLarge = ErrorCode(rawValue: 5)
    public static let unknownMessageType = ErrorCode(rawValue: 6)
    public static let badVarint = ErrorCode(rawValue: 7)
    public static let invalidUTF8 = ErrorCode(rawValue: 8)
    public static let truncated = ErrorCode(rawValue: 9)
    public static let invalidName = ErrorCode(rawValue: 10)
    public static let unexpectedMessage = ErrorCode(rawValue: 11)

    // Session errors: decided by the hub or the client, never by the codec.
    public static let unauthorised = ErrorCode(rawValue: 32)
    public static let outOfScope = ErrorCode(rawValue: 33)
    public static let clockSkew = ErrorCode(rawValue: 34)
    public static let serverBusy = ErrorCode(rawValue: 35)
    public static let `internal` = ErrorCode(rawValue: 36)
    public static let unknownTable = ErrorCode(rawValue: 37)
    public static let unknownView = ErrorCode(rawValue: 38)
    public static let badCursor = ErrorCode(rawValue: 39)
    public static let schemaMismatch = ErrorCode(rawValue: 40)
    // Agreed for protocol version 2 (PROTOCOL.md §5.7); any version may send them.
    public static let invalidValue = ErrorCode(rawValue: 41)
    public static let replicaConflict = ErrorCode(rawValue: 42)
    public static let badViewParameter = ErrorCode(rawValue: 43)
    public static let forbidden = ErrorCode(rawValue: 44)
    public static let enrollmentRefused = ErrorCode(rawValue: 45)

    /// Every code this version of the spec defines, with its spec name.
    public static let known: [(code: ErrorCode, name: String)] = [
        (.badFrame, "BAD_FRAME"), (.badMagic, "BAD_MAGIC"), (.badChecksum, "BAD_CHECKSUM"),
        (.unsupportedVersion, "UNSUPPORTED_VERSION"), (.tooLarge, "TOO_LARGE"),
        (.unknownMessageType, "UNKNOWN_MESSAGE_TYPE"), (.badVarint, "BAD_VARINT"),
        (.invalidUTF8, "INVALID_UTF8"), (.truncated, "TRUNCATED"), (.invalidName, "INVALID_NAME"),
        (.unexpectedMessage, "UNEXPECTED_MESSAGE"),
        (.unauthorised, "UNAUTHORISED"), (.outOfScope, "OUT_OF_SCOPE"), (.clockSkew, "CLOCK_SKEW"),
        (.serverBusy, "SERVER_BUSY"), (.internal, "INTERNAL"), (.unknownTable, "UNKNOWN_TABLE"),
        (.unknownView, "UNKNOWN_VIEW"), (.badCursor, "BAD_CURSOR"), (.schemaMismatch, "SCHEMA_MISMATCH"),
        (.invalidValue, "INVALID_VALUE"), (.replicaConflict, "REPLICA_CONFLICT"), (.badViewParameter, "BAD_VIEW_PARAMETER"),
        (.forbidden, "FORBIDDEN"), (.enrollmentRefused, "ENROLLMENT_REFUSED"),
    ]

    /// Whether a client may reconnect after this code (with backoff, and at least
    /// `retry_after_ms` when given): PROTOCOL.md §5.7's "retry?" column. Unknown codes are
    /// treated like INTERNAL, so they are retryable.
    public var isRetryable: Bool {
        ![ErrorCode.unauthorised, .outOfScope, .unsupportedVersion, .schemaMismatch, .invalidValue, .replicaConflict,
          .badViewParameter, .forbidden, .enrollmentRefused].contains(self)
    }

    /// The spec name (`BAD_MAGIC`), or `CODE_<n>` for a code this version does not know.
    public var name: String {
        ErrorCode.known.first { $0.code == self }?.name ?? "CODE_\(rawValue)"
    }

    public init?(name: String) {
        guard let entry = ErrorCode.known.first(where: { $0.name == name }) else { return nil }
        self = entry.code
    }

    public var description: String { name }
}

/// Everything the codec can refuse. Each case maps to exactly one `ErrorCode`.
///
/// Descriptions never quote payload bytes: a frame may carry personal data.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The body does not follow the message's layout (field past the end, trailing bytes,
    /// bad tag or boolean, index out of range, non-canonical encoding, reserved flag bits…).
    case badFrame(String)
    /// The first two bytes of a frame are not the magic `0x53 0x59`.
    case badMagic
    case badChecksum(expected: UInt32, actual: UInt32)
    /// The frame format version byte is not one this decoder reads.
    case unsupportedVersion(UInt8)
    /// A declared payload length above the frame cap (checked before anything is buffered for
    /// it), or a message with more elements (rows, cells, values, list entries) than the
    /// per-message element cap.
    case tooLarge(what: String, size: UInt64, maximum: UInt64)
    case unknownMessageType(UInt8)
    /// A varint longer than 10 bytes, above 2^64-1, or not in its shortest form.
    case badVarint
    case invalidUTF8
    /// The stream ended inside a frame.
    case truncated(bufferedBytes: Int)
    /// A table or column name that is not a valid identifier.
    case invalidName

    public var code: ErrorCode {
        switch self {
        case .badFrame: return .badFrame
        case .badMagic: return .badMagic
        case .badChecksum: return .badChecksum
        case .unsupportedVersion: return .unsupportedVersion
        case .tooLarge: return .tooLarge
        case .unknownMessageType: return .unknownMessageType
        case .badVarint: return .badVarint
        case .invalidUTF8: return .invalidUTF8
        case .truncated: return .truncated
        case .invalidName: return .invalidName
        }
    }

    public var description: String {
        switch self {
        case .badFrame(let reason): return "BAD_FRAME: \(reason)"
        case .badMagic: return "BAD_MAGIC: not a StoreSync frame"
        case .badChecksum(let expected, let actual):
            return "BAD_CHECKSUM: header says \(hex32(expected)), payload has \(hex32(actual))"
        case .unsupportedVersion(let version): return "UNSUPPORTED_VERSION: frame format \(version)"
        case .tooLarge(let what, let size, let maximum): return "TOO_LARGE: \(what) \(size), cap is \(maximum)"
        case .unknownMessageType(let type): return "UNKNOWN_MESSAGE_TYPE: \(type)"
        case .badVarint: return "BAD_VARINT: overlong, overflowing or non-minimal varint"
        case .invalidUTF8: return "INVALID_UTF8: a string field is not valid UTF-8"
        case .truncated(let count): return "TRUNCATED: stream ended inside a frame (\(count) bytes buffered)"
        case .invalidName: return "INVALID_NAME: table or column name is not [a-z_][a-z0-9_]{0,63}"
        }
    }
}

func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
