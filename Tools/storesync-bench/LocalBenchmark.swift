import Foundation
import SQLite
import SyncEngine

/// Engine-logged writes and merges against raw SQLite inserts of the same rows, same table
/// shape, same pragmas, measured side by side in one run (best of `rounds` for each side).
struct LocalBenchmark {
    var rows: Int
    var rounds: Int
    var durable: Bool
    var reporter: Reporter

    private static let leads = try! TableSchema("leads", kind: .lastWriterWins, columns: [
        ("name", .text), ("phone", .text), ("store", .text), ("owner", .text),
        ("source", .text), ("score", .integer), ("stage", .text), ("due_ms", .integer),
    ])
    private static let visits = try! TableSchema("visits", kind: .insertOnly, columns: [
        ("lead", .text), ("store", .text), ("guide", .text), ("at_ms", .integer),
        ("duration_min", .integer), ("products", .text), ("outcome", .text), ("rating", .real),
    ])
    private static let schema = [leads, visits]

    private typealias Row = (key: String, values: [Value])

    func run() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var fileNumber = 0
        func freshPath() -> String {
            fileNumber += 1
            return directory.appendingPathComponent("db\(fileNumber).sqlite").path
        }

        reporter.header("storesync-bench local: \(rows) rows, best of \(rounds), synchronous=\(durable ? "FULL" : "NORMAL"), WAL")
        let singleRows = min(rows, 20_000)
        let leadRows = makeLeads(rows)
        let visitRows = makeVisits(rows)

        for (table, data, name) in [(Self.visits, visitRows, "insert-only"), (Self.leads, leadRows, "lww 8 cols")] {
            let target = table.kind == .insertOnly ? 0.75 : 0.5
            reporter.emit(try compare("\(name) insert, 1000/tx", unit: "rows", count: data.count, target: target,
                                      baseline: { try rawInsert(table, data, batch: 1_000, path: freshPath()) },
                                      engine: { try engineInsert(table, data, batch: 1_000, path: freshPath()) }))
            let single = Array(data.prefix(singleRows))
            reporter.emit(try compare("\(name) insert, 1/tx", unit: "rows", count: single.count,
                                      target: table.kind == .insertOnly ? 0.75 : 0.8,
                                      baseline: { try rawInsert(table, single, batch: 1, path: freshPath()) },
                                      engine: { try engineInsert(table, single, batch: 1, path: freshPath()) }))
        }

        reporter.emit(try compareUpdates(leadRows, freshPath: freshPath))
        reporter.emit(try compareMerge(freshPath: freshPath))
    }

    // MARK: Scenarios

    private func compare(
        _ scenario: String, unit: String, count: Int, target: Double?,
        baseline: () throws -> Double, engine: () throws -> Double
    ) throws -> Measurement {
        var bestBaseline = Double.infinity
        var bestEngine = Double.infinity
        for _ in 0..<rounds {
            bestBaseline = min(bestBaseline, try baseline())
            bestEngine = min(bestEngine, try engine())
        }
        return Measurement(scenario: scenario, unit: unit, opsPerSecond: Double(count) / bestEngine,
                           baselineOpsPerSecond: Double(count) / bestBaseline, targetRatio: target)
    }

    private func rawDatabase(_ table: TableSchema, path: String) throws -> Database {
        var options = Database.Options()
        options.synchronous = durable ? .full : .normal
        let database = try Database(path: path, options: options)
        try database.execute(table.createTableSQL)
        return database
    }

    private func replica(path: String) throws -> Replica {
        var options = ReplicaOptions()
        options.synchronous = durable ? .full : .normal
        return try Replica(path: path, schema: Self.schema, options: options)
    }

    private func rawInsert(_ table: TableSchema, _ data: [Row], batch: Int, path: String) throws -> Double {
        let database = try rawDatabase(table, path: path)
        let statement = try database.prepare(table.insertSQL())
        return try measureSeconds {
            for chunk in data.chunked(batch) {
                try database.transaction {
                    for row in chunk {
                        statement.reset()
                        try statement.bind(row.key, at: 1)
                        for (index, value) in row.values.enumerated() { try statement.bind(value, at: Int32(index + 2)) }
                        try statement.step()
                    }
                }
            }
        }
    }

    private func engineInsert(_ table: TableSchema, _ data: [Row], batch: Int, path: String) throws -> Double {
        let replica = try replica(path: path)
        let name = table.name
        return try measureSeconds {
            for chunk in data.chunked(batch) {
                try replica.write { tx in
                    for row in chunk { try tx.insert(into: name, primaryKey: row.key, values: row.values) }
                }
            }
        }
    }

    /// Updating one column of existing rows, 1000 per transaction.
    private func compareUpdates(_ data: [Row], freshPath: () -> String) throws -> Measurement {
        let table = Self.leads
        let stage = try ColumnName("stage")
        return try compare("lww update 1 col, 1000/tx", unit: "rows", count: data.count, target: nil, baseline: {
            let path = freshPath()
            _ = try rawInsert(table, data, batch: 1_000, path: path)
            let database = try rawDatabase(table, path: path)
            let statement = try database.prepare("UPDATE leads SET stage = ? WHERE id = ?")
            return try measureSeconds {
                for chunk in data.chunked(1_000) {
                    try database.transaction {
                        for row in chunk { try statement.execute([.text("demo"), .text(row.key)]) }
                    }
                }
            }
        }, engine: {
            let path = freshPath()
            _ = try engineInsert(table, data, batch: 1_000, path: path)
            let replica = try replica(path: path)
            return try measureSeconds {
                for chunk in data.chunked(1_000) {
                    try replica.write { tx in
                        for row in chunk { try tx.update(table.name, primaryKey: row.key, set: [stage: .text("demo")]) }
                    }
                }
            }
        })
    }

    /// Merging a remote changeset of 200,000 cells (25,000 rows × 8 columns) into an empty
    /// replica, against a raw insert of the same rows in one transaction.
    private func compareMerge(freshPath: () -> String) throws -> Measurement {
        let data = makeLeads(25_000)
        let source = try replica(path: freshPath())
        for chunk in data.chunked(1_000) {
            try source.write { tx in
                for row in chunk { try tx.insert(into: Self.leads.name, primaryKey: row.key, values: row.values) }
            }
        }
        let changeset = try source.changes(since: 0)
        let cells = changeset.cellCount
        return try compare("merge 200k-cell changeset", unit: "cells", count: cells, target: 0.4, baseline: {
            try rawInsert(Self.leads, data, batch: data.count, path: freshPath())
        }, engine: {
            let target = try replica(path: freshPath())
            return try measureSeconds { _ = try target.apply(changeset) }
        })
    }

    // MARK: Data

    private func makeLeads(_ count: Int) -> [Row] {
        var random = SplitMix64(seed: 1)
        let start: UInt64 = 1_763_000_000_000
        return (0..<count).map { index in
            let key = UniqueID.make(milliseconds: start + UInt64(index), using: &random)
            return (key, [
                .text("Customer \(index % 9_973)"), .text("138\(String(format: "%08d", index % 100_000_000))"),
                .text("S\(index % 40)"), .text("G\(index % 300)"), .text("walk-in"),
                .integer(Int64(index % 100)), .text("reached"), .integer(Int64(start) + Int64(index) * 1_000),
            ])
        }
    }

    private func makeVisits(_ count: Int) -> [Row] {
        var random = SplitMix64(seed: 2)
        let start: UInt64 = 1_763_000_000_000
        return (0..<count).map { index in
            let key = UniqueID.make(milliseconds: start + UInt64(index), using: &random)
            return (key, [
                .text("L\(index % 5_000)"), .text("S\(index % 40)"), .text("G\(index % 300)"),
                .integer(Int64(start) + Int64(index) * 60_000), .integer(Int64(index % 45)),
                .text("SKU-\(index % 700),SKU-\(index % 311)"), .text("interested"), .real(Double(index % 5) + 0.5),
            ])
        }
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: Swift.max(1, size)).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
