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
//
// storesync-crash-writer --db PATH --seed N --concurrent BATCHES
//
// One of several processes writing one file at once, as one-shot commands beside a live sync
// do (SequenceUniquenessTests): opens the replica afresh for every batch, and in it inserts a
// lead and two visits, updates one of its own earlier leads and now and then deletes one (only
// its own, so no other process can make the update miss). Prints `committed <n> <leadKey>`
// after each commit and exits 0 after BATCHES batches.
//
// storesync-crash-writer --try-lock --db PATH
//
// Tries to take the replica's lock (ReplicaLock) as "storesync-crash-writer --try-lock" and
// prints `acquired` or `locked <pid> <command>` (BackupTests: a second process is told who
// holds the file).
//
// storesync-crash-writer --probe-open --db PATH [--as-nobody]
//
// Opens the replica once and prints `opened` or `error <category> <retryable> <message>`
// (StorageErrorTests). With --as-nobody, a root process first drops to uid/gid 65534, so the
// test sees file permissions even when the suite runs as root.

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
    enum Mode {
        case crash
        case concurrent(batches: Int)
        case probeOpen(asNobody: Bool)
        case tryLock
    }

    var path: String
    var seed: UInt64
    var mode: Mode

    init?(_ arguments: [String]) {
        var path: String?
        var seed: UInt64?
        var concurrent: Int?
        var probe = false
        var tryLock = false
        var asNobody = false
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--db": path = iterator.next()
            case "--seed": seed = iterator.next().flatMap { UInt64($0) }
            case "--concurrent":
                guard let count = iterator.next().flatMap({ Int($0) }), count > 0 else { return nil }
                concurrent = count
            case "--probe-open": probe = true
            case "--as-nobody": asNobody = true
            case "--try-lock": tryLock = true
            default: return nil
            }
        }
        guard let path else { return nil }
        self.path = path
        if tryLock {
            self.seed = 0
            self.mode = .tryLock
            return
        }
        if probe {
            self.seed = 0
            self.mode = .probeOpen(asNobody: asNobody)
            return
        }
        guard let seed else { return nil }
        self.seed = seed
        self.mode = concurrent.map { .concurrent(batches: $0) } ?? .crash
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

/// One process among several on one file: a fresh `Replica` per batch, like one-shot commands.
func runConcurrentWriter(_ arguments: Arguments, batches: Int) throws {
    let schema = try makeSchema()
    let leads = try TableName("leads")
    let visits = try TableName("visits")
    let stage = try ColumnName("stage")
    var generator = SplitMix64(seed: arguments.seed)
    var ownLeads: [String] = []
    for batch in 1...batches {
        let replica = try Replica(path: arguments.path, schema: schema)
        let key = UniqueID.make(milliseconds: systemWallClock(), using: &generator)
        let visitKeys = (0..<2).map { _ in UniqueID.make(milliseconds: systemWallClock(), using: &generator) }
        var deleted: String?
        if ownLeads.count > 2, generator.next() % 6 == 0 {
            deleted = ownLeads.remove(at: Int.random(in: ownLeads.indices, using: &generator))
        }
        let updated = ownLeads.randomElement(using: &generator)
        try replica.write { transaction in
            try transaction.insert(into: leads, primaryKey: key, values: [
                .text("Lead \(batch)"), .text("+00 000 \(batch)"), .text("store-1"), .text("guide-1"),
                .text("concurrent-writer"), .integer(Int64(batch)), .text("new"), .integer(Int64(batch)),
            ])
            for (index, visitKey) in visitKeys.enumerated() {
                try transaction.insert(into: visits, primaryKey: visitKey, values: [
                    .text(key), .text("store-1"), .text("guide-1"), .integer(Int64(batch)),
                    .integer(Int64(index)), .text("products"), .text("none"), .real(4.5),
                ])
            }
            if let updated {
                try transaction.update(leads, primaryKey: updated, set: [stage: .text("updated-by-\(batch)")])
            }
            if let deleted {
                try transaction.delete(from: leads, primaryKey: deleted)
            }
        }
        ownLeads.append(key)
        try FileHandle.standardOutput.write(contentsOf: Data("committed \(batch) \(key)\n".utf8))
    }
}

/// Opens the replica once and reports how that went, classified as a script would see it.
func probeOpen(_ arguments: Arguments, asNobody: Bool) throws {
    if asNobody && getuid() == 0 {
        // Group first: once the user id is dropped, changing the group is no longer allowed.
        guard setgid(65534) == 0, setuid(65534) == 0 else {
            throw Failure(description: "cannot drop to uid 65534: errno \(errno)")
        }
    }
    let line: String
    do {
        _ = try Replica(path: arguments.path, schema: try makeSchema())
        line = "opened"
    } catch let error as SyncError {
        line = "error \(error.category.rawValue) \(error.isRetryable) \(error)"
    }
    try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}

/// Takes the replica's lock if it is free and reports what happened.
func tryLock(_ arguments: Arguments) throws {
    let line: String
    switch Result(catching: { () throws(ReplicaFileError) -> ReplicaLock in
        try ReplicaLock.acquire(path: arguments.path, holder: "storesync-crash-writer --try-lock")
    }) {
    case .success(let lock):
        lock.release()
        line = "acquired"
    case .failure(.locked(_, let holder)):
        line = "locked " + (holder.map { "\($0.pid) \($0.command)" } ?? "unknown")
    case .failure(let error):
        throw error
    }
    try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}

guard let arguments = Arguments(Array(CommandLine.arguments.dropFirst())) else {
    writeStandardError("usage: storesync-crash-writer --db PATH --seed N [--concurrent BATCHES] | --probe-open --db PATH [--as-nobody]\n")
    exit(ExitCode.usage.rawValue)
}
do {
    switch arguments.mode {
    case .crash: try runWriter(arguments)
    case .concurrent(let batches): try runConcurrentWriter(arguments, batches: batches)
    case .probeOpen(let asNobody): try probeOpen(arguments, asNobody: asNobody)
    case .tryLock: try tryLock(arguments)
    }
} catch {
    writeStandardError("storesync-crash-writer: \(error)\n")
    exit(ExitCode.failure.rawValue)
}
