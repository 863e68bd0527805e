import LockBox
import SQLite
public import SyncEngine

/// What a node sees: a terminal its store (`store:S`), a regional hub its region (`region:R`),
/// HQ everything (`all`). The text form is what `storesync init` records and HELLO carries.
public enum NodeScope: Sendable, Hashable, CustomStringConvertible {
    case store(String)
    case region(String)
    case all

    public init?(_ text: String) {
        if text == "all" {
            self = .all
        } else if text.hasPrefix("store:"), text.count > 6 {
            self = .store(String(text.dropFirst(6)))
        } else if text.hasPrefix("region:"), text.count > 7 {
            self = .region(String(text.dropFirst(7)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .store(let store): return "store:\(store)"
        case .region(let region): return "region:\(region)"
        case .all: return "all"
        }
    }

    /// Why a node of this scope may not serve a peer asking for `requested`, or nil when it may.
    /// A store must be registered (a `stores` row) in the serving node's region: a terminal
    /// set up with a mistyped store id is refused rather than creating a phantom store.
    public func refusal(toServe requested: NodeScope, regions: [String: String]) -> String? {
        switch (self, requested) {
        case (.all, .store(let store)):
            return regions[store] == nil ? "store \(store) is not registered; add it with `storesync store add`" : nil
        case (.all, _):
            return nil
        case (.region(let region), .store(let store)):
            guard let storeRegion = regions[store] else {
                return "store \(store) is not registered; add it with `storesync store add`"
            }
            return storeRegion == region ? nil : "store \(store) is in region \(storeRegion), not in this hub's region \(region)"
        case (.region(let region), .region(let other)):
            return region == other ? nil : "this hub serves region \(region), not \(other)"
        case (.region(let region), .all):
            return "this hub serves region \(region) only; connect to HQ for everything"
        case (.store, _):
            return "a terminal serves no one"
        }
    }
}

/// Which store each row concerns, the one fact scopes are built on.
///
/// Most tables carry a `store` column. A store's own row concerns that store (and its region is
/// in the row). A promotion suggestion concerns both the store it is addressed to and the store
/// whose low stock raised it. A row of an unknown table, or without a store, concerns no store:
/// only HQ's scope holds it.
public enum RowStores {
    private static let store = column("store")
    private static let region = column("region")
    private static let targetStore = column("target_store")
    private static let sourceStore = column("source_store")

    public static func stores(of row: RowChange, table: TableName, columns: [ColumnName]) -> [String] {
        switch table {
        case RetailSchema.stores.name:
            return [row.primaryKey]
        case RetailSchema.promotions.name:
            return [text(of: targetStore, in: row, columns: columns), text(of: sourceStore, in: row, columns: columns)].compactMap { $0 }
        default:
            return text(of: store, in: row, columns: columns).map { [$0] } ?? []
        }
    }

    /// The region a `stores` row places its store in.
    static func region(ofStoreRow row: RowChange, columns: [ColumnName]) -> String? {
        text(of: region, in: row, columns: columns)
    }

    private static func text(of name: ColumnName, in row: RowChange, columns: [ColumnName]) -> String? {
        guard let index = columns.firstIndex(of: name) else { return nil }
        for cell in row.cells where cell.column == index {
            if case .text(let value) = cell.value { return value }
        }
        return nil
    }

    private static func column(_ name: String) -> ColumnName {
        do {
            return try ColumnName(name)
        } catch {
            preconditionFailure("invalid built-in column name \(name): \(error)")
        }
    }
}

/// The region of every store, read from a replica's `stores` table and reloaded only when that
/// table changed (one indexed lookup per batch to find out).
public final class StoreDirectory: Sendable {
    private struct Cache {
        var sequence: UInt64?
        var regions: [String: String] = [:]
    }

    private let reader: ReplicaReader
    private let cache = LockBox(Cache())
    private static let loadSQL = "SELECT id, region FROM stores"

    public init(reader: ReplicaReader) {
        self.reader = reader
    }

    /// The current store → region map.
    public func regions() throws -> [String: String] {
        let sequence = try reader.latestSequence(of: RetailSchema.stores.name)
        if let cached = cache.withLockedValue({ $0.sequence == sequence ? $0.regions : nil }) { return cached }
        let rows = try reader.read { database in try database.fetchAll(Self.loadSQL) }
        var regions: [String: String] = [:]
        for row in rows {
            if case .text(let store) = row[0], case .text(let region) = row[1] { regions[store] = region }
        }
        cache.withLockedValue { $0 = Cache(sequence: sequence, regions: regions) }
        return regions
    }
}

/// The rows of one scope, checked against a snapshot of the store directory.
///
/// Going out (a pull), a row is sent only when it provably belongs to the scope. Coming in (a
/// push), the check protects the directory and other scopes without wedging an honest peer:
/// - a terminal (`store:S`) pushes its store's rows, never `stores` rows (reference data comes
///   from operators at hubs and HQ);
/// - a regional hub (`region:R`) may register a store in R or update one of R's, but never a
///   store of another region; its other rows are refused only when they concern stores known
///   to be elsewhere. A store it registered may not be known upstream yet (its `stores` row can
///   sit in an earlier, not yet committed push, or later in its log than the store's rows),
///   and holding that against it would stop its relay for good. Such rows reach no other
///   region: a region's pulls send only rows of stores registered in it.
public struct RetailRowScope: RowScope {
    public let scope: NodeScope
    private let directory: StoreDirectory?
    private let regions: [String: String]
    private let incoming: Bool

    /// `directory` is needed for a region scope (which stores are in the region); a store scope
    /// and `all` decide from the row alone.
    public init(scope: NodeScope, directory: StoreDirectory?) {
        self.init(scope: scope, directory: directory, regions: [:], incoming: false)
    }

    private init(scope: NodeScope, directory: StoreDirectory?, regions: [String: String], incoming: Bool) {
        self.scope = scope
        self.directory = directory
        self.regions = regions
        self.incoming = incoming
    }

    public func forBatch(_ incoming: Changeset?) throws -> any RowScope {
        guard case .region = scope else {
            return RetailRowScope(scope: scope, directory: directory, regions: [:], incoming: incoming != nil)
        }
        var regions = try directory?.regions() ?? [:]
        // A pushed batch may register a store together with its first rows (never move one).
        for table in incoming?.tables ?? [] where table.table == RetailSchema.stores.name {
            for row in table.rows where regions[row.primaryKey] == nil {
                if let region = RowStores.region(ofStoreRow: row, columns: table.columns) { regions[row.primaryKey] = region }
            }
        }
        return RetailRowScope(scope: scope, directory: directory, regions: regions, incoming: incoming != nil)
    }

    public func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool {
        switch scope {
        case .all:
            return true
        case .store(let store):
            if incoming && table == RetailSchema.stores.name { return false }
            return RowStores.stores(of: row, table: table, columns: columns).contains(store)
        case .region(let region):
            if table == RetailSchema.stores.name {
                guard RowStores.region(ofStoreRow: row, columns: columns) == region else { return false }
                return !incoming || regions[row.primaryKey].map { $0 == region } ?? true
            }
            let stores = RowStores.stores(of: row, table: table, columns: columns)
            if incoming {
                return !stores.isEmpty && stores.allSatisfy { regions[$0].map { $0 == region } ?? true }
            }
            return stores.contains { regions[$0] == region }
        }
    }
}
