/// Operator-chosen identifiers (stores, regions, guides, SKUs): 1 to 64 letters, digits, `-`, `_`, `.`.
public enum Identifier {
    public static func check(_ value: String, field: String) throws(RetailError) -> String {
        let valid = !value.isEmpty && value.utf8.count <= 64 && value.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".")
        }
        guard valid else { throw RetailError.invalidValue(field: field, expected: "1 to 64 letters, digits, '-', '_' or '.'") }
        return value
    }

    /// Free text a guide types (a name, an outcome): trimmed, not empty, at most `limit` characters.
    public static func text(_ value: String, field: String, limit: Int = 200) throws(RetailError) -> String {
        let trimmed = value.trimmingWhitespace()
        guard !trimmed.isEmpty, trimmed.count <= limit, !trimmed.contains(where: { $0.isNewline }) else {
            throw RetailError.invalidValue(field: field, expected: "1 to \(limit) characters on one line")
        }
        return trimmed
    }
}
