import Retail
import SyncEngine

/// Retail-like rows for the network benchmarks: what a store terminal writes in a day of
/// field sales.
///
/// The plain mix (`sync`, `relay`): per cycle, two leads (last-writer-wins, 15 columns), one visit
/// and one sale (insert-only, 8 and 7 columns): about two thirds of the cells are lead cells.
/// Every third lead is updated afterwards (stage and last touch), so rows carry cells of two
/// versions, as leads moved along the funnel do.
///
/// The rules mix (`sync --rules`, see `RetailWorkload+Rules.swift`) adds what the hub's central
/// rules judge: stock signals of SKUs with safety thresholds, stage moves with their previous
/// stage, and leads that share a phone.
///
/// Columns are set by name, so a column added to `RetailSchema` later stays NULL here instead
/// of breaking the benchmark.
struct RetailWorkload {
    enum Mix: String {
        case plain
        case rules
    }

    let mix: Mix
    let leads = RetailSchema.leads
    let visits = RetailSchema.visits
    let sales = RetailSchema.sales
    let signals = RetailSchema.inventorySignals
    private let names: [String: ColumnName]

    static let stages = ["reached", "needs-confirmed", "demo", "negotiation", "won", "lost"]
    static let startMilliseconds: UInt64 = 1_767_225_600_000

    init(mix: Mix = .plain) throws {
        self.mix = mix
        var names: [String: ColumnName] = [:]
        for table in [RetailSchema.leads, RetailSchema.visits, RetailSchema.sales, RetailSchema.inventorySignals] {
            for column in table.columns { names[column.name.rawValue] = column.name }
        }
        self.names = names
    }

    func row(_ table: TableSchema, _ values: [(String, Value)]) throws -> [ColumnName: Value] {
        var row: [ColumnName: Value] = [:]
        for (name, value) in values {
            guard let column = names[name], table.columns.contains(where: { $0.name == column }) else {
                throw BenchError.setup("RetailSchema.\(table.name) has no column \(name); update RetailWorkload")
            }
            row[column] = value
        }
        return row
    }

    /// One lead as a guide enters it on the terminal of `store`; `phoneIndex` picks its phone
    /// (by default its own, so no two leads of a store share one).
    func lead(store: String, guide: String, index: Int, phoneIndex: Int? = nil, at milliseconds: UInt64) throws -> [ColumnName: Value] {
        let score = Int64(index * 37 % 101)
        let grade = score >= 85 ? "A" : score >= 60 ? "B" : "C"
        let phone = "1380013\(String((phoneIndex ?? index) % 10_000).leftPadded(to: 4))"
        return try row(leads, [
            ("store", .text(store)), ("owner_guide", .text(guide)), ("customer_name", .text("Customer \(index % 9_973)")),
            ("phone", .text("+86 \(phone)")), ("phone_normalized", .text("+86\(phone)")), ("source", .text("walk-in")),
            ("score", .integer(score)), ("grade", .text(grade)), ("stage", .text(Self.stages[0])),
            ("created_ms", .integer(Int64(milliseconds))), ("last_touch_ms", .integer(Int64(milliseconds))),
            ("next_action_due_ms", .integer(Int64(milliseconds) + 48 * 3_600_000)), ("first_response_ms", .null),
            ("canonical_id", .null),
        ])
    }

    func visit(store: String, guide: String, lead: String, index: Int, at milliseconds: UInt64) throws -> [ColumnName: Value] {
        try row(visits, [
            ("store", .text(store)), ("guide", .text(guide)), ("lead", .text(lead)),
            ("customer_name", .text("Customer \(index % 9_973)")), ("at_ms", .integer(Int64(milliseconds))),
            ("duration_min", .integer(Int64(5 + index % 40))), ("products", .text("SKU-\(index % 700),SKU-\(index % 311)")),
            ("outcome", .text(index % 3 == 0 ? "follow_up" : "interested")),
        ])
    }

    func sale(store: String, guide: String, lead: String, index: Int, sku: String? = nil, at milliseconds: UInt64) throws -> [ColumnName: Value] {
        try row(sales, [
            ("store", .text(store)), ("guide", .text(guide)), ("sku", .text(sku ?? "SKU-\(index % 700)")),
            ("quantity", .integer(Self.saleQuantity(index))), ("amount_cents", .integer(Int64(1_999 + index * 113 % 50_000))),
            ("at_ms", .integer(Int64(milliseconds))), ("lead", .text(lead)),
        ])
    }

    static func saleQuantity(_ index: Int) -> Int64 { Int64(1 + index % 3) }

    /// Writes about `cells` cells (column values) of one terminal's day at `store` into
    /// `replica`, 500 rows per transaction, then the lead updates; returns how many rows it inserted.
    @discardableResult
    func writeDay(terminal: Int, store: String, cells: Int, into replica: Replica) throws -> Int {
        switch mix {
        case .plain: return try writePlainDay(terminal: terminal, store: store, cells: cells, into: replica)
        case .rules: return try writeRulesDay(terminal: terminal, store: store, cells: cells, into: replica)
        }
    }

    /// One replica per terminal in `scratch` (terminal n from 0 is store `storeID(n + 1)`), each
    /// holding its day of about `cells` cells; returns them and how many rows they hold.
    func writeFleet(terminals: Int, cells: Int, in scratch: ScratchDirectory) throws -> (replicas: [Replica], rows: Int) {
        var replicas: [Replica] = []
        var rows = 0
        for terminal in 0..<terminals {
            let replica = try Replica(path: scratch.path("terminal-\(terminal).sqlite"), schema: RetailSchema.all)
            rows += try writeDay(terminal: terminal, store: storeID(terminal + 1), cells: cells, into: replica)
            replicas.append(replica)
        }
        return (replicas, rows)
    }

    private func writePlainDay(terminal: Int, store: String, cells: Int, into replica: Replica) throws -> Int {
        var random = SplitMix64(seed: UInt64(terminal) &+ 0xBE7C)
        var written = 0
        var rows: [(TableName, String, [ColumnName: Value])] = []
        var leadKeys: [String] = []
        var index = 0
        while written < cells {
            let milliseconds = Self.startMilliseconds + UInt64(index) * 60_000
            let guide = "G\(terminal + 1)-\(index % 6)"
            let key = UniqueID.make(milliseconds: milliseconds, using: &random)
            switch index % 4 {
            case 0, 1:
                rows.append((leads.name, key, try lead(store: store, guide: guide, index: index, at: milliseconds)))
                leadKeys.append(key)
                written += leads.columns.count
            case 2:
                let lead = leadKeys.last ?? ""
                rows.append((visits.name, key, try visit(store: store, guide: guide, lead: lead, index: index, at: milliseconds)))
                written += visits.columns.count
            default:
                let lead = leadKeys.last ?? ""
                rows.append((sales.name, key, try sale(store: store, guide: guide, lead: lead, index: index, at: milliseconds)))
                written += sales.columns.count
            }
            index += 1
        }
        try insert(rows, into: replica)
        let moved = try row(leads, [("stage", .text(Self.stages[2])), ("last_touch_ms", .integer(Int64(Self.startMilliseconds) + 86_400_000))])
        let updated = stride(from: 0, to: leadKeys.count, by: 3).map { leadKeys[$0] }
        try update(updated.map { ($0, moved) }, into: replica)
        return rows.count
    }

    /// Inserts `rows` in transactions of 500 rows.
    func insert(_ rows: [(TableName, String, [ColumnName: Value])], into replica: Replica) throws {
        for chunk in rows.chunked(500) {
            try replica.write { tx in
                for (table, key, values) in chunk { try tx.insert(into: table, primaryKey: key, values) }
            }
        }
    }

    /// Updates leads in transactions of 500 rows.
    func update(_ changes: [(String, [ColumnName: Value])], into replica: Replica) throws {
        for chunk in changes.chunked(500) {
            try replica.write { tx in
                for (key, values) in chunk { try tx.update(leads.name, primaryKey: key, set: values) }
            }
        }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
