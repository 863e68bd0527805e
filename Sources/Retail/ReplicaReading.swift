public import SQLite
public import SyncEngine

/// What the retail views need of a replica: queries, and the version of every row of a table
/// (stock is ordered by version). Both the replica and a read-only `ReplicaReader` on its file
/// provide it, so a hub computes views without touching its writer connection.
public protocol ReplicaReading: Sendable {
    func read<T: Sendable>(_ body: (Database) throws -> T) throws -> T
    func forEachRowVersion(in table: TableName, _ body: (String, Version) throws -> Void) throws
}

extension Replica: ReplicaReading {}
extension ReplicaReader: ReplicaReading {}
