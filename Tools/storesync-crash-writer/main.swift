// storesync-crash-writer --db PATH --seed N
//
// The child process of the crash-safety test (Tests/SyncEngineTests/CrashSafetyTests.swift).
// It writes to a replica in a loop until it is killed, and after each write transaction
// has committed prints one line to stdout:
//
//     committed <batch> <leadKey>
//
// Batch b, one transaction: inserts lead <leadKey> (score = b) and three visits of it
// (at_ms = b, duration_min = 0, 1, 2); sets `stage` of an earlier live lead to
// "updated-by-b" and, now and then, deletes another one. Visit 1's `outcome` names the
// updated lead ("updated:<key>"), visit 0's the deleted one ("deleted:<key>"), otherwise
// "none": so the file alone says exactly what every batch did, and the test can check it.
//
// On reopening an existing file it continues after the highest batch the file holds.
// Nothing else is printed on stdout; errors go to stderr.

import Foundation
import SyncEngine

enum ExitCode: Int32 {
    case failure = 1
    case usage = 64
}

/// The tables written. They must equal `TestSchema.tables` (Tests/SyncEngineTests/Support.swift):
/// the test opens the file with those, and the engine refuses a file whose recorded tables differ.
func makeSchema() throws -> [TableSchema] {
    [
        try TableSchema("leads", kind: .lastWriterWins, columns: [
            ("name", .text), ("phone", .text), ("store", .text), ("owner", .text),
            ("source", .text), ("score", .integer), ("stage", .text), ("due_ms", .integer),
        ], indexes: [["store"]]),
        try TableSchema("visits", kind: .insertOnly, columns: [
            ("lead", .text), ("store", .text), ("guide", .text), ("at_ms", .integer),
            ("duration_min", .integer), ("products", .text), ("outcome", .text), ("rating", .real),
        ]),
    ]
}

struct Arguments {
    var path: String
    var seed: UInt64

    init?(_ arguments: [String]) {
        var path: String?
        var seed: UInt64?
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--db": path = iterator.next()
            case "--seed": seed = iterator.next().flatMap { UInt64($0) }
            default: return nil
            }
        }
        guard let path, let seed else { return nil }
        self.path = path
        self.seed = seed
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
}

func writeStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}

func runWriter(_ arguments: Arguments) throws -> Never {
    let replica = try Replica(path: arguments.path, schema: try makeSchema())
    let leads = try TableName("leads")
    let visits = try TableName("visits")
    let stage = try ColumnName("stage")
    var generator = SplitMix64(seed: arguments.seed)

    // Continue the history the file holds, if any.
    let (lastBatch, existingLeads) = try replica.read { database -> (Int64, [String]) in
        let last = try database.fetchScalar("SELECT coalesce(max(at_ms), 0) FROM visits")?.integerValue ?? 0
        let keys = try database.fetchAll("SELECT id FROM leads ORDER BY id").compactMap { $0.first?.textValue }
        return (last, keys)
    }
    var liveLeads = existingLeads
    var batch = lastBatch

    while true {
        batch += 1
        let key = UniqueID.make(milliseconds: systemWallClock(), using: &generator)
        let visitKeys = (0..<3).map { _ in UniqueID.make(milliseconds: systemWallClock(), using: &generator) }
        var deleted: String?
        if liveLeads.count > 2, generator.next() % 8 == 0 {
            deleted = liveLeads.remove(at: Int.random(in: liveLeads.indices, using: &generator))
        }
        let updated = liveLeads.randomElement(using: &generator)
        let outcomes: [String] = [
            deleted.map { "deleted:\($0)" } ?? "none",
            updated.map { "updated:\($0)" } ?? "none",
            "none",
        ]
        let store = "store-\(batch % 7)"
        let guide = "guide-\(batch % 3)"

        try replica.write { transaction in
            try transaction.insert(into: leads, primaryKey: key, values: [
                .text("Lead \(batch)"), .text("+00 000 \(batch)"), .text(store), .text(guide),
                .text("crash-writer"), .integer(batch), .text("new"), .integer(batch),
            ])
            for (index, visitKey) in visitKeys.enumerated() {
                try transaction.insert(into: visits, primaryKey: visitKey, values: [
                    .text(key), .text(store), .text(guide), .integer(batch),
                    .integer(Int64(index)), .text("products of \(batch)"), .text(outcomes[index]), .real(4.5),
                ])
            }
            if let updated {
                try transaction.update(leads, primaryKey: updated, set: [stage: .text("updated-by-\(batch)")])
            }
            if let deleted {
                try transaction.delete(from: leads, primaryKey: deleted)
            }
        }
        liveLeads.append(key)

        // Reported only once the commit has returned; a closed stdout (the test went away) ends the loop.
        do {
            try FileHandle.standardOutput.write(contentsOf: Data("committed \(batch) \(key)\n".utf8))
        } catch {
            throw Failure(description: "cannot report batch \(batch): \(error)")
        }
    }
}

guard let arguments = Arguments(Array(CommandLine.arguments.dropFirst())) else {
    writeStandardError("usage: storesync-crash-writer --db PATH --seed N\n")
    exit(ExitCode.usage.rawValue)
}
do {
    try runWriter(arguments)
} catch {
    writeStandardError("storesync-crash-writer: \(error)\n")
    exit(ExitCode.failure.rawValue)
}
