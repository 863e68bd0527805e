import SyncEngine
import Wire

extension SyncError {
    /// The protocol's error code for an engine refusal (PROTOCOL.md §5.7).
    var wireCode: ErrorCode {
        switch self {
        case .clockSkew: return .clockSkew
        case .unknownTable: return .unknownTable
        case .unknownColumn, .schemaMismatch: return .schemaMismatch
        case .invalidName: return .invalidName
        case .invalidChangeset, .invalidReplicaID, .immutableTable, .rowExists, .rowNotFound: return .badFrame
        case .notAReplica, .storage: return .internal
        }
    }
}
