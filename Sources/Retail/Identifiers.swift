/// Operator-chosen identifiers (stores, regions, guides, SKUs): 1 to 64 letters, digits, `-`, `_`, `.`.
public enum Identifier {
    public static func check(_ value: String, field: String) throws(RetailError) -> String {
        // The schema's identifier format, so what a command accepts a hub accepts.
        guard TextFormat.identifier.violation(value) == nil else {
            throw RetailError.invalidValue(field: field, expected: "1 to 64 letters, digits, '-', '_' or '.'")
        }
        return value
    }

    /// Free text a guide types (a name, an outcome): trimmed, not empty, at most `limit` characters.
    public static func text(_ value: String, field: String, limit: Int = 200) throws(RetailError) -> String {
        let trimmed = value.trimmingWhitespace()
        // No control characters: the schema's `line` format refuses them (a tab would pass here and fail there).
        let control = trimmed.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
        guard !trimmed.isEmpty, trimmed.count <= limit, !control, !trimmed.contains(where: { $0.isNewline }) else {
            throw RetailError.invalidValue(field: field, expected: "1 to \(limit) characters on one line")
        }
        return trimmed
    }
}
