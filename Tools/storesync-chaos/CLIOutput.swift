import Foundation

/// What the harness reads from `storesync … --format json`, as typed values.

/// `lead add`, `visit log`, `stock …`, `sale record`: the new row's id (and a sale's signal).
struct CreatedJSON: Decodable {
    var id: String?
    var signal: String?
}

/// `sync --format json`.
struct SyncJSON: Decodable {
    var pushed_rows: Int?
    var pulled_rows: Int?
}

/// A failure with `--format json`: `{"error", "message", "retryable"}`.
struct FailureJSON: Decodable {
    var error: String?
    var message: String?
}

/// One row of `stock show --format json`.
struct StockLevelJSON: Decodable {
    var sku: String
    var stock: Int64
    var signals: Int
}

/// One row of `report --view sales --by store --format json`.
struct SalesRowJSON: Decodable {
    var store: String?
    var revenue: String?
}

/// Decodes the last line of a command's standard output (nil when it is not that JSON).
func decodeLastLine<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
    guard let line = text.split(separator: "\n").last else { return nil }
    return try? JSONDecoder().decode(T.self, from: Data(line.utf8))
}
