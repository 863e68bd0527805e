public import SQLite

/// A value of a replicated cell: one of SQLite's five storage classes.
public typealias Value = SQLValue

/// The name of a replicated table. Only `[a-z_][a-z0-9_]*`, at most 64 characters, and never
/// starting with `sync_` (the engine's own prefix), so a name can be quoted into SQL safely.
public struct TableName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) throws(SyncError) {
        guard isPlainIdentifier(rawValue), !rawValue.hasPrefix("sync_") else {
            throw SyncError.invalidName(rawValue)
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: TableName, rhs: TableName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The name of a column of a replicated table; same rule as `TableName` (without the prefix rule).
public struct ColumnName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) throws(SyncError) {
        guard isPlainIdentifier(rawValue) else { throw SyncError.invalidName(rawValue) }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: ColumnName, rhs: ColumnName) -> Bool { lhs.rawValue < rhs.rawValue }
}

func isPlainIdentifier(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard let first = bytes.first, bytes.count <= 64 else { return false }
    func isLetter(_ byte: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || byte == UInt8(ascii: "_") }
    func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
    return isLetter(first) && bytes.allSatisfy { isLetter($0) || isDigit($0) }
}
