/// A row that breaks the application schema (Protocol/SCHEMA.md): which table, which column
/// (`id` for the key) and why. It never holds the offending value: cells carry customers'
/// names and phones, and this text reaches peers (INVALID_VALUE) and logs.
public struct SchemaViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// A required column is missing from a live row.
        case missing
        /// A required column is NULL.
        case null
        /// The value has a storage class the column does not take.
        case wrongType(expected: [StorageClass], got: StorageClass)
        case outOfRange(String)
        case notFinite
        case tooLong(maxBytes: Int)
        case empty
        case badFormat(expected: String)

        public var description: String {
            switch self {
            case .missing: return "required column missing"
            case .null: return "required column is NULL"
            case .wrongType(let expected, let got):
                return "expected \(expected.map(\.rawValue).joined(separator: " or ")), got \(got.rawValue)"
            case .outOfRange(let range): return "out of range \(range)"
            case .notFinite: return "not a finite number"
            case .tooLong(let maxBytes): return "longer than \(maxBytes) bytes"
            case .empty: return "empty text"
            case .badFormat(let expected): return "not in the format \(expected)"
            }
        }
    }

    public var table: String
    public var column: String
    public var reason: Reason
    /// The key of the offending row, kept only when the key itself has its table's format (a
    /// ULID, an operator's id, a derived key): those hold no personal data; anything else might.
    public var row: String?

    public init(table: String, column: String, reason: Reason, row: String? = nil) {
        self.table = table
        self.column = column
        self.reason = reason
        self.row = row
    }

    public var description: String {
        "invalid value in \(table).\(column)" + (row.map { " of row \($0)" } ?? "") + ": \(reason)"
    }
}
