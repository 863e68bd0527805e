/// The shapes a TEXT value (or a row key) of the retail schema may take. Every format bounds the
/// length in UTF-8 bytes, so no pushed value can grow a replica beyond what the schema allows.
/// Checks work on bytes only: they must give the same answer in every language.
public enum TextFormat: Sendable, Hashable {
    /// An operator-chosen id (store, region, guide, SKU): 1 to 64 bytes of ASCII letters, digits, `-`, `_`, `.`.
    case identifier
    /// A device-generated key: a ULID, 26 characters of Crockford base32 (`0-9`, `A-Z` without `I`, `L`, `O`, `U`),
    /// the first `0`–`7` (48 bits of milliseconds, 80 random bits).
    case ulid
    /// `<store>/<sku>`: two identifiers joined by `/`.
    case identifierPair
    /// A key derived by the central rules: `prefix` and 32 lowercase hex digits.
    case derivedKey(prefix: String)
    /// Exactly one of `values`.
    case oneOf([String])
    /// Text people type, on one line: 1 to `maxBytes` bytes, no control characters (U+0000–U+001F, U+007F).
    case line(maxBytes: Int)
    /// A phone as typed: 1 to 64 bytes of digits, spaces and `+ - . ( )`.
    case phone
    /// A normalised phone: an optional `+` and 6 to 15 digits.
    case normalizedPhone
    /// Identifiers joined by `,`, at most `maxBytes` bytes in all.
    case identifierList(maxBytes: Int)

    /// The longest value the format allows, in UTF-8 bytes.
    public var maxBytes: Int {
        switch self {
        case .identifier: return 64
        case .ulid: return 26
        case .identifierPair: return 129
        case .derivedKey(let prefix): return prefix.utf8.count + 32
        case .oneOf(let values): return values.map(\.utf8.count).max() ?? 0
        case .line(let maxBytes), .identifierList(let maxBytes): return maxBytes
        case .phone: return 64
        case .normalizedPhone: return 16
        }
    }

    /// Why `text` does not have the format, or nil when it has. Never quotes the text.
    public func violation(_ text: String) -> SchemaViolation.Reason? {
        let bytes = text.utf8
        guard bytes.count <= maxBytes else { return .tooLong(maxBytes: maxBytes) }
        guard !bytes.isEmpty else { return .empty }
        let valid: Bool
        switch self {
        case .identifier:
            valid = Self.isIdentifier(bytes[...])
        case .ulid:
            valid = bytes.count == 26 && bytes.first.map { (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) } == true
                && bytes.allSatisfy(Self.isCrockford)
        case .identifierPair:
            let parts = bytes.split(separator: UInt8(ascii: "/"), maxSplits: 2, omittingEmptySubsequences: false)
            valid = parts.count == 2 && parts.allSatisfy(Self.isIdentifier)
        case .derivedKey(let prefix):
            valid = text.hasPrefix(prefix) && bytes.count == prefix.utf8.count + 32
                && bytes.dropFirst(prefix.utf8.count).allSatisfy(Self.isLowercaseHex)
        case .oneOf(let values):
            valid = values.contains(text)
        case .line:
            valid = bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
        case .phone:
            valid = bytes.allSatisfy { Self.isDigit($0) || " +-.()".utf8.contains($0) }
        case .normalizedPhone:
            let digits = bytes.first == UInt8(ascii: "+") ? bytes.dropFirst() : bytes[...]
            valid = (6...15).contains(digits.count) && digits.allSatisfy(Self.isDigit)
        case .identifierList:
            valid = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).allSatisfy(Self.isIdentifier)
        }
        return valid ? nil : .badFormat(expected: specification)
    }

    /// The format as SCHEMA.md states it (the doc test compares the two).
    public var specification: String {
        switch self {
        case .identifier: return "identifier"
        case .ulid: return "ULID"
        case .identifierPair: return "identifier/identifier"
        case .derivedKey(let prefix): return "`\(prefix)` + 32 hex"
        case .oneOf(let values): return "one of " + values.map { "`\($0)`" }.joined(separator: ", ")
        case .line(let maxBytes): return "line ≤ \(maxBytes) bytes"
        case .phone: return "phone ≤ 64 bytes"
        case .normalizedPhone: return "normalised phone"
        case .identifierList(let maxBytes): return "identifier list ≤ \(maxBytes) bytes"
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func isLowercaseHex(_ byte: UInt8) -> Bool { isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) }

    private static func isCrockford(_ byte: UInt8) -> Bool {
        isDigit(byte) || ((UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) && !"ILOU".utf8.contains(byte))
    }

    private static func isIdentifier(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.count <= 64 && bytes.allSatisfy { byte in
            isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }
}
