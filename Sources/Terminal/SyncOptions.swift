import Foundation
public import SyncEngine
public import Net
public import Wire

/// How a replica syncs with its hub.
public struct SyncOptions: Sendable {
    public var hub: SocketAddress
    public var role: Role = .terminal
    /// What this replica asks to see, e.g. `store:S001`.
    public var scope: String
    public var credentials: [UInt8] = []
    public var connectTimeout: Duration = .seconds(5)
    /// Longest wait for any answer from the hub before the session counts as broken.
    public var replyTimeout: Duration = .seconds(30)
    /// Cells per PUSH, capped by what the hub announces.
    public var maxBatchCells: UInt32 = 20_000
    /// Unacknowledged PUSHes in flight at once.
    public var pushWindow = 4
    /// The widest replicated table, to turn a cell budget into a row budget.
    public var widestTableColumns = 8
    /// A leaf (a terminal) pushes only rows it wrote to, since the hub sent it everything else.
    /// A relay (a regional hub syncing with HQ) sets this to false: it pushes every row the
    /// upstream did not write alone, its terminals' writes included.
    public var pushOnlyLocalWrites = true

    public init(hub: SocketAddress, scope: String) {
        self.hub = hub
        self.scope = scope
    }
}

/// What one sync did.
public struct SyncReport: Sendable, Equatable {
    public var hub: String = ""
    /// The hub's replica id, learnt in the handshake.
    public var hubReplica: ReplicaID?
    public var pushedBatches = 0
    public var pushedRows = 0
    public var pulledBatches = 0
    public var pulledRows = 0
    /// Rows the pulls inserted, updated or deleted here.
    public var changedRows = 0
    /// Our sequence the hub confirmed holding.
    public var pushCursor: UInt64 = 0
    /// The hub's sequence we hold everything up to.
    public var pullCursor: UInt64 = 0
    /// Rows re-stamped because the hub showed our clock to be wrong.
    public var restampedRows = 0

    public init() {}
}

/// Why a sync session ended early.
public struct SyncFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case connect
        case timeout
        case disconnected
        /// The hub sent ERROR (code in `code`).
        case refused
        case protocolViolation
        case local
        /// This database is not the only one with its replica id (a restored backup or a clone,
        /// PROTOCOL.md §7.3): detected here (the hub holds more of our changes than we wrote) or
        /// refused by the hub (REPLICA_CONFLICT in `code`). Never retried: run `storesync reidentify`.
        case replicaConflict
    }

    public var kind: Kind
    public var code: ErrorCode?
    public var message: String
    public var retryAfterMilliseconds: UInt32?

    /// Errors a person or an upgrade must fix; retrying changes nothing (PROTOCOL.md §5.7).
    public var isPermanent: Bool {
        if kind == .replicaConflict { return true }
        guard kind == .refused, let code else { return false }
        return !code.isRetryable
    }

    public var description: String {
        if let code { return "\(message) (hub error \(code.rawValue))" }
        return message
    }
}
