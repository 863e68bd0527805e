import Foundation
import SQLite
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

    /// What failed on this side, when a local failure has a known cause.
    public enum LocalCause: Sendable, Equatable {
        /// The disk (or quota) is full: nothing was written; worth retrying once space is freed.
        case diskFull
        /// Another connection held the database longer than the busy timeout.
        case databaseBusy
        /// The file or its directory may not be read or written by this user.
        case permissionDenied
    }

    public var kind: Kind
    public var code: ErrorCode?
    public var message: String
    public var retryAfterMilliseconds: UInt32?
    public var localCause: LocalCause?

    public init(kind: Kind, code: ErrorCode? = nil, message: String, retryAfterMilliseconds: UInt32? = nil,
                localCause: LocalCause? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.localCause = localCause
    }

    /// Errors a person or an upgrade must fix; retrying changes nothing (PROTOCOL.md §5.7):
    /// UNSUPPORTED_VERSION, UNAUTHORISED, OUT_OF_SCOPE, SCHEMA_MISMATCH and the codes of
    /// protocol version 2 (41 INVALID_VALUE … 45 ENROLLMENT_REFUSED).
    public var isPermanent: Bool {
        if kind == .replicaConflict { return true }
        guard kind == .refused, let code else { return false }
        return !code.isRetryable
    }

    /// Worth running again unchanged later (a script's exit code 75): the hub could not be
    /// reached or did not answer, the link dropped, the hub was busy or failed inside
    /// (SERVER_BUSY, INTERNAL), or the local disk was full or the database busy.
    public var isRetryable: Bool {
        switch kind {
        case .connect, .timeout, .disconnected:
            return true
        case .refused:
            guard let code else { return false }
            return [ErrorCode.serverBusy, .internal, .clockSkew].contains(code)
        case .local:
            return localCause == .diskFull || localCause == .databaseBusy
        case .protocolViolation, .replicaConflict:
            return false
        }
    }

    /// The cause of a local error, from the engine's classification (`SyncError.category(of:)`).
    public static func localCause(of error: any Error) -> LocalCause? {
        switch SyncError.category(of: error) {
        case .diskFull?: return .diskFull
        case .busy?: return .databaseBusy
        case .permissionDenied?: return .permissionDenied
        case .notAReplica?, .refused?, .storage?, nil: return nil
        }
    }

    public var description: String {
        if let code { return "\(message) (hub error \(code.rawValue))" }
        return message
    }
}
