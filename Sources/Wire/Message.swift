public import SyncEngine

/// One protocol message, as Swift values. PROTOCOL.md §5 gives each one's layout and meaning.
public enum Message: Sendable, Hashable {
    case hello(Hello)
    case helloAck(HelloAck)
    /// A changeset batch from the sender's log; acknowledged by `pushAck(changeset.toSequence)`.
    case push(Changeset)
    /// The receiver has durably applied the sender's changes up to this source sequence.
    case pushAck(acknowledgedSequence: UInt64)
    case pull(Pull)
    case pullBatch(PullBatch)
    /// Live mode: the hub's latest sequence for the receiver's scope moved to this value.
    case notify(latestSequence: UInt64)
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    case viewRequest(ViewRequest)
    case viewRows(ViewRows)
    case error(ErrorMessage)

    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .helloAck: return .helloAck
        case .push: return .push
        case .pushAck: return .pushAck
        case .pull: return .pull
        case .pullBatch: return .pullBatch
        case .notify: return .notify
        case .ping: return .ping
        case .pong: return .pong
        case .viewRequest: return .viewRequest
        case .viewRows: return .viewRows
        case .error: return .error
        }
    }
}

/// The type byte of a frame header.
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 0x01
    case helloAck = 0x02
    case push = 0x03
    case pushAck = 0x04
    case pull = 0x05
    case pullBatch = 0x06
    case notify = 0x07
    case ping = 0x08
    case pong = 0x09
    case viewRequest = 0x0A
    case viewRows = 0x0B
    case error = 0x0C

    /// The spec name, e.g. `HELLO_ACK`.
    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .helloAck: return "HELLO_ACK"
        case .push: return "PUSH"
        case .pushAck: return "PUSH_ACK"
        case .pull: return "PULL"
        case .pullBatch: return "PULL_BATCH"
        case .notify: return "NOTIFY"
        case .ping: return "PING"
        case .pong: return "PONG"
        case .viewRequest: return "VIEW_REQUEST"
        case .viewRows: return "VIEW_ROWS"
        case .error: return "ERROR"
        }
    }
}

/// What kind of node opens a session.
public enum Role: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case terminal = 0
    case hub = 1
    case hq = 2

    public var description: String {
        switch self {
        case .terminal: return "terminal"
        case .hub: return "hub"
        case .hq: return "hq"
        }
    }
}

/// First message of a session, client to server.
public struct Hello: Sendable, Hashable {
    /// Protocol versions the client speaks, in its order of preference.
    public var protocolVersions: [UInt16]
    public var replica: ReplicaID
    public var role: Role
    /// The scope the client asks to see, e.g. `store:S001`; the server checks it against the credentials.
    public var scope: String
    /// The client's clock when it sent HELLO, so the server can spot a skewed device early.
    public var clock: HLCTimestamp
    /// Opaque to this version of the protocol; a later security issue defines the content.
    public var credentials: [UInt8]
    /// Protocol version 2 (PROTOCOL.md §5.1, §7.3): the lease this server issued the client last
    /// time, empty when the client holds none. On the wire only when `protocolVersions` lists 2
    /// (then exactly 0 or 16 bytes); it must stay empty otherwise.
    public var lease: [UInt8]

    public init(protocolVersions: [UInt16], replica: ReplicaID, role: Role, scope: String, clock: HLCTimestamp, credentials: [UInt8],
                lease: [UInt8] = []) {
        self.protocolVersions = protocolVersions
        self.replica = replica
        self.role = role
        self.scope = scope
        self.clock = clock
        self.credentials = credentials
        self.lease = lease
    }

    /// Whether the layout carries the version 2 `lease` field.
    public var carriesLease: Bool { protocolVersions.contains(2) }
}

/// The lease of protocol version 2 (PROTOCOL.md §7.3): 16 random bytes a server issues a client
/// replica at each handshake, which the client presents at the next one.
public enum Lease {
    public static let byteCount = 16
}

/// Limits the server imposes on the session.
public struct SessionLimits: Sendable, Hashable {
    /// Largest payload the server accepts in one frame (≤ the 16 MiB format cap).
    public var maxFrameBytes: UInt32
    /// Largest number of cells the server accepts in one PUSH, and the default for PULL.
    public var maxBatchCells: UInt32
    /// The server closes a session silent for this long; clients PING well within it.
    public var idleTimeoutMilliseconds: UInt32

    public init(maxFrameBytes: UInt32, maxBatchCells: UInt32, idleTimeoutMilliseconds: UInt32) {
        self.maxFrameBytes = maxFrameBytes
        self.maxBatchCells = maxBatchCells
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
    }
}

/// The server's answer to HELLO when it accepts the session.
public struct HelloAck: Sendable, Hashable {
    /// The version chosen for the rest of the session.
    public var protocolVersion: UInt16
    public var replica: ReplicaID
    /// The server's clock: a client whose wall clock disagrees too much adopts it.
    public var clock: HLCTimestamp
    /// Highest source sequence of the client's changes the server has durably applied:
    /// the client pushes next from here (a PUSH_ACK lost to a disconnect is recovered so).
    public var pushCursor: UInt64
    /// The server's latest sequence in the client's scope; the client pulls if it is behind.
    public var latestSequence: UInt64
    public var limits: SessionLimits
    /// Protocol version 2: the forward clock drift the server allows before CLOCK_SKEW (§7.4).
    /// Present exactly when `protocolVersion` is 2.
    public var maxClockDriftMilliseconds: UInt32?
    /// Protocol version 2: the lease (16 bytes) the client must store durably before sending
    /// anything else and present at its next HELLO (§7.3). Present exactly when `protocolVersion` is 2.
    public var lease: [UInt8]?

    public init(protocolVersion: UInt16, replica: ReplicaID, clock: HLCTimestamp, pushCursor: UInt64, latestSequence: UInt64, limits: SessionLimits,
                maxClockDriftMilliseconds: UInt32? = nil, lease: [UInt8]? = nil) {
        self.protocolVersion = protocolVersion
        self.replica = replica
        self.clock = clock
        self.pushCursor = pushCursor
        self.latestSequence = latestSequence
        self.limits = limits
        self.maxClockDriftMilliseconds = maxClockDriftMilliseconds
        self.lease = lease
    }
}

/// Ask for the server's changes after a cursor.
public struct Pull: Sendable, Hashable {
    /// The `toSequence` of the last batch the client applied (0 at first).
    public var fromSequence: UInt64
    /// At most this many cells in the answer; 0 means the server's `maxBatchCells`.
    public var maxCells: UInt32
    /// After an answer with `more == false`, send NOTIFY when new changes arrive.
    public var live: Bool

    public init(fromSequence: UInt64, maxCells: UInt32, live: Bool) {
        self.fromSequence = fromSequence
        self.maxCells = maxCells
        self.live = live
    }
}

/// The answer to one PULL.
public struct PullBatch: Sendable, Hashable {
    /// More changes are waiting after `changeset.toSequence`: pull again from there.
    public var more: Bool
    public var changeset: Changeset

    public init(more: Bool, changeset: Changeset) {
        self.more = more
        self.changeset = changeset
    }
}

public struct ViewParameter: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Ask for the rows of a consolidated view (HQ reports).
public struct ViewRequest: Sendable, Hashable {
    /// Chosen by the client; echoed in every VIEW_ROWS of the answer.
    public var requestID: UInt64
    public var view: String
    /// In the order given; a name may repeat if the view allows lists.
    public var parameters: [ViewParameter]

    public init(requestID: UInt64, view: String, parameters: [ViewParameter]) {
        self.requestID = requestID
        self.view = view
        self.parameters = parameters
    }
}

/// One chunk of a view's answer. Every row has exactly `columns.count` values.
public struct ViewRows: Sendable, Hashable {
    public var requestID: UInt64
    /// This is the last chunk of the answer.
    public var final: Bool
    public var columns: [String]
    public var rows: [[Value]]

    public init(requestID: UInt64, final: Bool, columns: [String], rows: [[Value]]) {
        self.requestID = requestID
        self.final = final
        self.columns = columns
        self.rows = rows
    }
}

/// An error report; the sender closes the connection after it.
public struct ErrorMessage: Sendable, Hashable {
    public var code: ErrorCode
    /// For people, in English; never contains personal data.
    public var message: String
    /// The sender's clock, for CLOCK_SKEW (the client may adopt it) and any other code.
    public var serverClock: HLCTimestamp?
    /// For SERVER_BUSY: wait at least this long before reconnecting.
    public var retryAfterMilliseconds: UInt32?

    public init(code: ErrorCode, message: String, serverClock: HLCTimestamp? = nil, retryAfterMilliseconds: UInt32? = nil) {
        self.code = code
        self.message = message
        self.serverClock = serverClock
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }
}
