import Foundation
import SQLite

/// One replica file's user tables, read directly with SQLite (never through the engine).
private struct Snapshot {
    struct Table {
        var columns: [String]
        /// Rendered rows by primary key (the first column).
        var rows: [String: [SQLValue]]
        var duplicateKeys: [String] = []

        func index(_ column: String) -> Int? { columns.firstIndex(of: column) }
    }

    var node: String
    var tables: [String: Table] = [:]
    /// Stock per "store/sku", recomputed here from the signals and their versions.
    var stock: [String: Int64] = [:]
    var integrity = "ok"
}

private let userTables = ["stores", "leads", "visits", "inventory_signals", "thresholds", "sales", "promotions", "rule_reviews"]

private func render(_ value: SQLValue) -> String {
    switch value {
    case .null: return "NULL"
    case .integer(let number): return "\(number)"
    case .real(let number): return "\(number)"
    case .text(let text): return text
    case .blob(let bytes): return "x'" + bytes.map { String(format: "%02x", $0) }.joined() + "'"
    }
}

private func render(_ row: [SQLValue]) -> String { row.map(render).joined(separator: "|") }

/// The invariants, checked on the files after the heal (and, cheaply, during it):
/// 1. every acknowledged write is present at every node whose scope includes it, and no table
///    holds more rows of a store than the workload attempted (nothing doubled);
/// 2. registers with one writer hold the last acknowledged value or a later attempt's;
/// 3. every replica of a scope holds identical rows for it (terminals, regional hub, HQ), and
///    nothing outside its scope;
/// 4. stock recomputed here from the signals and their versions is the same on every replica,
///    and equals what `storesync stock show` computes on each terminal;
/// 5. central-rule rows (promotions, reviews) are identical at the regional hub and HQ, and a
///    promotion exists once per (target, crossing signal);
/// 6. HQ's sales view equals the totals of HQ's sales rows, which lie between the acknowledged
///    lines' total and the attempted lines' total;
/// 7. `PRAGMA integrity_check` is ok in every file.
struct Checker {
    let directory: String
    let binary: String
    let hq: HubNode
    let regional: [String: HubNode]
    let terminals: [TerminalNode]
    let stores: [StoreSpec]
    let log: WriteLog

    private var regionOf: [String: String] { Dictionary(uniqueKeysWithValues: stores.map { ($0.id, $0.region) }) }

    private func load(_ node: String, _ path: String, full: Bool) throws -> Snapshot {
        var options = Database.Options()
        options.readOnly = true
        let database = try Database(path: path, options: options)
        var snapshot = Snapshot(node: node)
        for table in userTables {
            let columns = try database.fetchAll("SELECT name FROM pragma_table_info(?) ORDER BY cid", [.text(table)]).compactMap { $0.first?.textValue }
            var rows: [String: [SQLValue]] = [:]
            var duplicates: [String] = []
            for row in try database.fetchAll("SELECT * FROM \"\(table)\"") {
                let key = row.first.map(render) ?? ""
                if rows[key] != nil { duplicates.append(key) }
                rows[key] = row
            }
            snapshot.tables[table] = Snapshot.Table(columns: columns, rows: rows, duplicateKeys: duplicates)
        }
        if full {
            snapshot.integrity = try database.integrityCheck()
            // Stock = the latest stocktake by version + the deltas after it; version = (hlc, replica bytes).
            let events = try database.fetchAll("""
                SELECT s.store, s.sku, s.kind, s.quantity, l.hlc, st.replica, s.id
                FROM inventory_signals AS s
                JOIN sync_log_inventory_signals AS l ON l.pk = s.id
                JOIN sync_sites AS st ON st.site = l.site
                """)
            var byPair: [String: [(hlc: Int64, replica: [UInt8], id: String, kind: String, quantity: Int64)]] = [:]
            for event in events {
                guard let store = event[0].textValue, let sku = event[1].textValue, let kind = event[2].textValue,
                      let quantity = event[3].integerValue, let hlc = event[4].integerValue, let replica = event[5].blobValue,
                      let id = event[6].textValue else { continue }
                byPair["\(store)/\(sku)", default: []].append((hlc, replica, id, kind, quantity))
            }
            for (pair, list) in byPair {
                let ordered = list.sorted { lhs, rhs in
                    if lhs.hlc != rhs.hlc { return UInt64(bitPattern: lhs.hlc) < UInt64(bitPattern: rhs.hlc) }
                    if lhs.replica != rhs.replica { return lhs.replica.lexicographicallyPrecedes(rhs.replica) }
                    return lhs.id < rhs.id
                }
                var stock: Int64 = 0
                for event in ordered {
                    if event.kind == "stocktake" { stock = event.quantity } else { stock = stock &+ event.quantity }
                }
                snapshot.stock[pair] = stock
            }
            let signals = snapshot.tables["inventory_signals"]?.rows.count ?? 0
            if events.count != signals {
                snapshot.integrity += " (\(signals) signals but \(events.count) with a logged version)"
            }
        }
        return snapshot
    }

    /// The store a row belongs to (promotions: both ends).
    private func owners(_ table: String, _ row: [SQLValue], _ columns: Snapshot.Table) -> [String] {
        switch table {
        case "stores": return [render(row[0])]
        case "promotions":
            return ["target_store", "source_store"].compactMap { columns.index($0).map { render(row[$0]) } }
        default:
            return columns.index("store").map { [render(row[$0])] } ?? []
        }
    }

    /// The rows of `store` (for every table), rendered and sorted: what every replica of the
    /// store's scope must hold identically.
    private func slice(_ snapshot: Snapshot, store: String) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (name, table) in snapshot.tables {
            result[name] = table.rows.values.filter { owners(name, $0, table).contains(store) }.map(render).sorted()
        }
        return result
    }

    private func nodes() -> [(name: String, path: String)] {
        [(hq.name, hq.database)] + regional.values.sorted { $0.name < $1.name }.map { ($0.name, $0.database) }
            + terminals.map { ($0.name, $0.database) }
    }

    /// Scope disagreements (cheap enough to run after every heal round).
    func divergence() -> [String] {
        do {
            var snapshots: [String: Snapshot] = [:]
            for node in nodes() { snapshots[node.name] = try load(node.name, node.path, full: false) }
            return compareScopes(snapshots)
        } catch {
            return ["cannot read the replicas: \(error)"]
        }
    }

    private func compareScopes(_ snapshots: [String: Snapshot]) -> [String] {
        var problems: [String] = []
        guard let central = snapshots[hq.name] else { return ["no HQ snapshot"] }
        for store in stores {
            let reference = slice(central, store: store.id)
            var holders: [String] = []
            if let hub = regional[store.region] { holders.append(hub.name) }
            holders += terminals.filter { $0.store.id == store.id }.map(\.name)
            for holder in holders {
                guard let snapshot = snapshots[holder] else { continue }
                let mine = slice(snapshot, store: store.id)
                for table in userTables where mine[table] != reference[table] {
                    let theirs = Set(reference[table] ?? [])
                    let ours = Set(mine[table] ?? [])
                    let missing = theirs.subtracting(ours).sorted().prefix(2)
                    let extra = ours.subtracting(theirs).sorted().prefix(2)
                    problems.append("store \(store.id) table \(table): \(holder) differs from hq (hq has \(theirs.count), \(holder) \(ours.count); "
                                    + "only at hq: \(missing.joined(separator: " ; ")); only at \(holder): \(extra.joined(separator: " ; ")))")
                }
            }
        }
        return problems
    }

    /// Every check on quiet files; each failure names its invariant.
    func check() -> [String] {
        var problems: [String] = []
        var snapshots: [String: Snapshot] = [:]
        do {
            for node in nodes() { snapshots[node.name] = try load(node.name, node.path, full: true) }
        } catch {
            return ["cannot read the replicas: \(error)"]
        }
        // 7. integrity
        for (name, snapshot) in snapshots.sorted(by: { $0.key < $1.key }) where snapshot.integrity != "ok" {
            problems.append("[integrity] \(name): \(snapshot.integrity)")
        }
        // 3. identical scopes
        problems += compareScopes(snapshots).map { "[convergence] " + $0 }
        // 3. nothing outside its scope
        let regionOf = self.regionOf
        for terminal in terminals {
            guard let snapshot = snapshots[terminal.name] else { continue }
            for (name, table) in snapshot.tables {
                let foreign = table.rows.values.filter { !owners(name, $0, table).contains(terminal.store.id) }
                if let row = foreign.first {
                    problems.append("[scope] \(terminal.name) (store \(terminal.store.id)) holds \(foreign.count) \(name) rows of other stores, e.g. \(render(row))")
                }
            }
        }
        for hub in regional.values.sorted(by: { $0.name < $1.name }) {
            guard let snapshot = snapshots[hub.name], let region = hub.region else { continue }
            for (name, table) in snapshot.tables {
                let foreign = table.rows.values.filter { row in
                    if name == "stores" { return table.index("region").map { render(row[$0]) != region } ?? false }
                    return !owners(name, row, table).contains { regionOf[$0] == region }
                }
                if let row = foreign.first {
                    problems.append("[scope] \(hub.name) holds \(foreign.count) \(name) rows of other regions, e.g. \(render(row))")
                }
            }
        }
        for (name, snapshot) in snapshots {
            for (table, content) in snapshot.tables where !content.duplicateKeys.isEmpty {
                problems.append("[duplicates] \(name) \(table) holds key(s) twice: \(content.duplicateKeys.prefix(3))")
            }
        }
        // 1. acknowledged inserts present everywhere in scope; no more rows than attempts
        for record in log.inserts where record.outcome == .acknowledged {
            guard let id = record.id else { continue }
            for holder in holders(of: record.store) {
                if snapshots[holder]?.tables[record.table]?.rows[id] == nil {
                    problems.append("[lost] acknowledged \(record.table) row \(id) (#\(record.sequence), \(record.terminal), store \(record.store)) missing at \(holder)")
                }
            }
        }
        if let central = snapshots[hq.name] {
            for table in ["leads", "visits", "inventory_signals", "sales"] {
                for store in stores {
                    let attempts = log.inserts.filter { $0.table == table && $0.store == store.id }
                    let present = central.tables[table]?.rows.values.filter { row in
                        central.tables[table].map { owners(table, row, $0).contains(store.id) } ?? false
                    }.count ?? 0
                    let acknowledged = attempts.filter { $0.outcome == .acknowledged }.count
                    if present > attempts.count || present < acknowledged {
                        problems.append("[doubled/lost] hq holds \(present) \(table) rows of \(store.id); the workload attempted \(attempts.count), \(acknowledged) acknowledged")
                    }
                }
            }
        }
        // 2. registers
        problems += checkRegisters(snapshots)
        // 4. stock
        problems += checkStock(snapshots)
        // 5. promotions once per cause
        for (name, snapshot) in snapshots {
            guard let table = snapshot.tables["promotions"], let target = table.index("target_store"),
                  let signal = table.index("crossing_signal") else { continue }
            var seen: [String: Int] = [:]
            for row in table.rows.values { seen[render(row[target]) + "/" + render(row[signal]), default: 0] += 1 }
            for (cause, count) in seen where count > 1 {
                problems.append("[rules] \(name) holds \(count) promotions for one (target, crossing signal) \(cause)")
            }
        }
        // 3. a concurrent won and lost (both acknowledged: neither terminal had seen the other's
        // move, or it would have refused its own) keeps won and is flagged for review.
        problems += checkWonLost(snapshots)
        // 6. HQ's sales view
        problems += checkSalesView(snapshots)
        return problems
    }

    /// The nodes whose scope includes `store`.
    private func holders(of store: String) -> [String] {
        var names = [hq.name]
        if let region = regionOf[store], let hub = regional[region] { names.append(hub.name) }
        names += terminals.filter { $0.store.id == store }.map(\.name)
        return names
    }

    private func checkRegisters(_ snapshots: [String: Snapshot]) -> [String] {
        var problems: [String] = []
        let grouped = Dictionary(grouping: log.registers, by: \.register)
        for (register, writes) in grouped.sorted(by: { $0.key < $1.key }) {
            let parts = register.split(separator: "/").map(String.init)
            guard parts.count >= 3, let column = parts.last else { continue }
            let table = parts[0]
            let key = parts[1..<(parts.count - 1)].joined(separator: "/")
            let ordered = writes.sorted { $0.sequence < $1.sequence }
            guard let lastAcknowledged = ordered.lastIndex(where: { $0.outcome == .acknowledged }) else { continue }
            // A lead's first write is its `lead add`; every later write of it (an update, a stage
            // move) was made on a terminal that held the lead, so after it in causal (and version)
            // order. The register's final value is then determined when those later writes come
            // from one terminal.
            let writers = table == "leads" ? Set(ordered.dropFirst().map(\.writer)) : Set(ordered.map(\.writer))
            let allowed = Set(ordered[lastAcknowledged...].map(\.value))
            let store: String
            if table == "stores" {
                store = key
            } else if table == "thresholds" {
                store = String(key.split(separator: "/").first ?? "")
            } else {
                store = log.inserts.first { $0.id == key }?.store ?? ""
            }
            for holder in holders(of: store) {
                guard let snapshot = snapshots[holder], let content = snapshot.tables[table], let index = content.index(column) else { continue }
                guard let row = content.rows[key] else {
                    problems.append("[lost] \(table) row \(key) missing at \(holder) (its register \(column) was acknowledged)")
                    continue
                }
                let value = render(row[index])
                if writers.count <= 1 {
                    if !allowed.contains(value) {
                        let acknowledged = ordered[lastAcknowledged]
                        problems.append("[lost-update] \(holder) \(table) \(key) \(column) = \(value); the last acknowledged write (#\(acknowledged.sequence) by \(acknowledged.writer)) set \(acknowledged.value)"
                                        + (allowed.count > 1 ? ", later attempts \(allowed.sorted())" : ""))
                    }
                } else if column == "stage" {
                    // Moves by several terminals: the rules decide; a won that was acknowledged stays won.
                    let wonAcknowledged = ordered.contains { $0.value == "won" && $0.outcome == .acknowledged }
                    let attempted = Set(ordered.map(\.value))
                    if (wonAcknowledged && value != "won") || !attempted.contains(value) {
                        problems.append("[lost-update] \(holder) lead \(key) stage = \(value) after moves by \(writers.sorted()) to \(ordered.map { "\($0.value)\($0.outcome == .acknowledged ? "" : "?")" })")
                    }
                }
            }
        }
        return problems
    }

    private func checkWonLost(_ snapshots: [String: Snapshot]) -> [String] {
        guard let central = snapshots[hq.name], let reviews = central.tables["rule_reviews"],
              let subject = reviews.index("subject_id"), let action = reviews.index("action") else { return [] }
        let flagged = Set(reviews.rows.values.filter { render($0[action]) == "won_lost_conflict" }.map { render($0[subject]) })
        var problems: [String] = []
        let moves = log.registers.filter { $0.register.hasPrefix("leads/") && $0.register.hasSuffix("/stage") && $0.outcome == .acknowledged }
        for (register, writes) in Dictionary(grouping: moves, by: \.register).sorted(by: { $0.key < $1.key }) {
            guard let won = writes.first(where: { $0.value == "won" }), let lost = writes.first(where: { $0.value == "lost" }) else { continue }
            let lead = register.split(separator: "/").dropFirst().first.map(String.init) ?? ""
            let stage = central.tables["leads"]?.rows[lead].flatMap { row in central.tables["leads"]?.index("stage").map { render(row[$0]) } }
            if stage != "won" || !flagged.contains(lead) {
                problems.append("[lost-update] lead \(lead): acknowledged won (#\(won.sequence) by \(won.writer)) and lost (#\(lost.sequence) by \(lost.writer)); hq has stage \(stage ?? "none")"
                                + (flagged.contains(lead) ? "" : " and no won_lost_conflict review"))
            }
        }
        return problems
    }

    private func checkStock(_ snapshots: [String: Snapshot]) -> [String] {
        var problems: [String] = []
        guard let central = snapshots[hq.name] else { return problems }
        for (pair, stock) in central.stock.sorted(by: { $0.key < $1.key }) {
            let store = String(pair.split(separator: "/").first ?? "")
            for holder in holders(of: store) where holder != hq.name {
                let theirs = snapshots[holder]?.stock[pair]
                if theirs != stock {
                    problems.append("[stock] \(pair): hq recomputes \(stock), \(holder) \(theirs.map { "\($0)" } ?? "nothing")")
                }
            }
        }
        // What the engine's StockLedger says on each terminal (through the CLI) against the recomputation here.
        for terminal in terminals {
            guard let snapshot = snapshots[terminal.name] else { continue }
            let scratch = directory + "/.stock-\(terminal.name)"
            guard let result = try? Child.run(binary, ["stock", "show", "--db", terminal.database, "--format", "json"], scratch: scratch,
                                              stderr: terminal.log, timeout: 60),
                  result.exit == .exited(0),
                  let levels = try? JSONDecoder().decode([StockLevelJSON].self, from: Data(result.stdout.utf8)) else {
                problems.append("[stock] `storesync stock show` failed on \(terminal.name)")
                continue
            }
            for level in levels {
                guard level.signals > 0 else { continue }
                let mine = snapshot.stock["\(terminal.store.id)/\(level.sku)"]
                if mine != level.stock {
                    problems.append("[stock] \(terminal.name) \(level.sku): `stock show` says \(level.stock), recomputed from the signals \(mine.map { "\($0)" } ?? "nothing")")
                }
            }
        }
        return problems
    }

    private func checkSalesView(_ snapshots: [String: Snapshot]) -> [String] {
        guard let central = snapshots[hq.name], let sales = central.tables["sales"], let storeIndex = sales.index("store"),
              let amountIndex = sales.index("amount_cents") else { return ["[views] hq has no sales table"] }
        var problems: [String] = []
        var table: [String: Int64] = [:]
        for row in sales.rows.values { table[render(row[storeIndex]), default: 0] += row[amountIndex].integerValue ?? 0 }
        let scratch = directory + "/.report"
        guard let result = try? Child.run(binary, ["report", "--db", hq.database, "--view", "sales", "--by", "store", "--format", "json"],
                                          scratch: scratch, stderr: hq.log, timeout: 60),
              result.exit == .exited(0),
              let rows = try? JSONDecoder().decode([SalesRowJSON].self, from: Data(result.stdout.utf8)) else {
            return ["[views] `storesync report --view sales` failed on hq"]
        }
        var view: [String: Int64] = [:]
        for row in rows {
            guard let store = row.store, let revenue = row.revenue else { continue }
            view[store] = cents(revenue)
        }
        for store in stores {
            let inTable = table[store.id] ?? 0
            let shown = view[store.id] ?? 0
            if inTable != shown {
                problems.append("[views] hq's sales view shows \(shown) cents for \(store.id), its sales rows add up to \(inTable)")
            }
            let lines = log.inserts.filter { $0.table == "sales" && $0.store == store.id }
            let acknowledged = lines.filter { $0.outcome == .acknowledged }.reduce(Int64(0)) { $0 + $1.amountCents }
            let attempted = lines.reduce(Int64(0)) { $0 + $1.amountCents }
            if inTable < acknowledged || inTable > attempted {
                problems.append("[views] hq's sales rows of \(store.id) add up to \(inTable) cents; acknowledged lines \(acknowledged), attempted \(attempted)")
            }
        }
        return problems
    }

    private func cents(_ decimal: String) -> Int64? {
        let parts = decimal.split(separator: ".", omittingEmptySubsequences: false)
        guard let whole = Int64(parts.first ?? "") else { return nil }
        var fraction: Int64 = 0
        if parts.count > 1 {
            let digits = String(parts[1].prefix(2)).padding(toLength: 2, withPad: "0", startingAt: 0)
            fraction = Int64(digits) ?? 0
        }
        return whole * 100 + (decimal.hasPrefix("-") ? -fraction : fraction)
    }
}
