import SQLite

/// Brings a replica file written by an older version of the engine up to the current layout, in
/// place, inside the transaction that opens it (DESIGN: upgrades strand nothing).
///
/// - Format 1 → 2 (issue 11): a race between processes could hand out one sequence number twice
///   (two rows of one last-writer-wins table, whose metadata had no unique constraint on `seq`,
///   or rows of two tables), and a pull cursor that passed the number could skip a row. Every
///   duplicate but the first gets a fresh number above the highest (its row is then offered to
///   peers again, which is idempotent); the last-writer-wins metadata gets a unique index on
///   `seq` (by `createStorage`, after this). The clock's high-water, which format 1 did not
///   keep, is computed from every version in the file.
enum ReplicaMigration {
    static let currentFormat: Int64 = 2

    static func migrate(_ database: Database, tables: [any ReplicatedTable], from format: Int64) throws {
        guard format <= currentFormat else {
            throw SyncError.schemaMismatch(table: "sync_state", reason: "file format \(format) is newer than this engine's \(currentFormat)")
        }
        guard format < 2 else { return }
        let existing = try tables.filter { table in
            try database.fetchScalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                                     [.text(table.metadataTableName)])?.integerValue == 1
        }
        try renumberDuplicateSequences(existing)
        for table in existing { try table.dropLegacyIndexes() }
        try ReplicaStore.setValue(database, key: ReplicaStore.Key.clockHighWater,
                                  .integer(Int64(bitPattern: try clockHighWater(of: existing))))
    }

    /// Keeps the first holder of each sequence (tables in name order) and moves the others above
    /// the highest sequence in the file.
    private static func renumberDuplicateSequences(_ tables: [any ReplicatedTable]) throws {
        var seen = Set<UInt64>()
        var moves: [(table: any ReplicatedTable, key: String, sequence: UInt64)] = []
        var highest: UInt64 = 0
        for table in tables {
            try table.forEachSequence { sequence, key in
                highest = max(highest, sequence)
                if !seen.insert(sequence).inserted { moves.append((table, key, sequence)) }
            }
        }
        for move in moves {
            highest += 1
            try move.table.moveSequence(primaryKey: move.key, from: move.sequence, to: highest)
        }
    }
}
