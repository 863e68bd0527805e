import Foundation
import Retail
import SyncEngine

/// Rows the tests write straight into a replica file (bypassing the guides' commands, for speed
/// and control), complete and valid per Protocol/SCHEMA.md: hubs refuse any pushed row that
/// breaks the application schema (INVALID_VALUE), so a test's rows must be the rows a real
/// terminal or operator would write. Device-written keys are `UniqueID.make()` (ULIDs).
enum ValidRows {
    static func column(_ name: String) -> ColumnName {
        // The names below are constants of the retail schema; a typo fails the test loudly.
        guard let column = try? ColumnName(name) else { preconditionFailure("bad column name \(name)") }
        return column
    }

    static var nowMilliseconds: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A lead as `storesync lead add` makes it (grade, stage, creation time), plus `extra` columns.
    @discardableResult
    static func lead(_ tx: WriteTransaction, store: String, stage: String = "reached", key: String = UniqueID.make(),
                     _ extra: [String: Value] = [:]) throws -> String {
        var cells: [ColumnName: Value] = [
            column("store"): .text(store), column("grade"): .text("C"), column("stage"): .text(stage),
            column("created_ms"): .integer(nowMilliseconds),
        ]
        for (name, value) in extra { cells[column(name)] = value }
        try tx.insert(into: RetailSchema.leads.name, primaryKey: key, cells)
        return key
    }

    @discardableResult
    static func visit(_ tx: WriteTransaction, store: String, guide: String = "g1", key: String = UniqueID.make(),
                      _ extra: [String: Value] = [:]) throws -> String {
        var cells: [ColumnName: Value] = [
            column("store"): .text(store), column("guide"): .text(guide), column("at_ms"): .integer(nowMilliseconds),
        ]
        for (name, value) in extra { cells[column(name)] = value }
        try tx.insert(into: RetailSchema.visits.name, primaryKey: key, cells)
        return key
    }

    @discardableResult
    static func sale(_ tx: WriteTransaction, store: String, sku: String, quantity: Int64 = 1, amountCents: Int64,
                     guide: String = "g1", key: String = UniqueID.make()) throws -> String {
        try tx.insert(into: RetailSchema.sales.name, primaryKey: key, [
            column("store"): .text(store), column("guide"): .text(guide), column("sku"): .text(sku),
            column("quantity"): .integer(quantity), column("amount_cents"): .integer(amountCents),
            column("at_ms"): .integer(nowMilliseconds),
        ])
        return key
    }

    /// A store as `storesync store add` registers it.
    static func store(_ tx: WriteTransaction, id: String, region: String, latitude: Double = 31, longitude: Double = 121,
                      name: String? = nil) throws {
        var cells: [ColumnName: Value] = [
            column("region"): .text(region), column("latitude"): .real(latitude), column("longitude"): .real(longitude),
        ]
        if let name { cells[column("name")] = .text(name) }
        try tx.insert(into: RetailSchema.stores.name, primaryKey: id, cells)
    }
}
