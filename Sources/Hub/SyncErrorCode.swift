import SyncEngine
import Wire

extension SyncError {
    /// The protocol's error code for an engine refusal (PROTOCOL.md §5.7).
    var wireCode: ErrorCode {
        switch self {
        case .clockSkew: return .clockSkew
        case .unknownTable: return .unknownTable
        // SCHEMA_MISMATCH means exactly: a pushed table's columns name one the hub's table
        // lacks (PROTOCOL.md §5.7). `schemaMismatch` is the hub's own file disagreeing with
        // its schema (a damaged or foreign file): the hub's fault, not the batch's.
        case .unknownColumn: return .schemaMismatch
        case .schemaMismatch: return .internal
        case .invalidName: return .invalidName
        case .invalidChangeset, .invalidReplicaID, .immutableTable, .rowExists, .rowNotFound: return .badFrame
        case .notAReplica, .storage: return .internal
        }
    }
}
