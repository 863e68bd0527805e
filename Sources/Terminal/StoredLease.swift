public import Net
public import SyncEngine
import Wire

/// Where a client keeps the lease a hub issued it (PROTOCOL.md §7.3), in its replica's settings:
/// `lease:<server id hex>` holds the 16 bytes; `lease_server:<hub address>` (and `lease_server`,
/// the last one used) name the server id, since HELLO goes out before the server says who it is.
/// `SyncSession` and every other client that speaks as a replica (the benchmark's push client)
/// keep it here, so they present the same lease whichever of them connects next.
public struct StoredLease: Sendable {
    public let replica: Replica
    public let hub: SocketAddress

    public init(replica: Replica, hub: SocketAddress) {
        self.replica = replica
        self.hub = hub
    }

    private static func leaseKey(_ server: String) -> String { "lease:\(server)" }
    private var serverKeyForAddress: String { "lease_server:\(hub)" }
    private static let lastServerKey = "lease_server"

    /// The lease to present in HELLO: the one from the server last seen at this address (or last
    /// seen at all); empty when we hold none. A hub that does not know it (a new or restored hub,
    /// with a new replica id) accepts any.
    public func presented() throws -> [UInt8] {
        for key in [serverKeyForAddress, Self.lastServerKey] {
            guard case .text(let server)? = try replica.setting(key) else { continue }
            if case .blob(let lease)? = try replica.setting(Self.leaseKey(server)), lease.count == Lease.byteCount { return lease }
        }
        return []
    }

    /// Stores the lease HELLO_ACK carried, durably, before anything else is sent in the session.
    public func store(_ lease: [UInt8], server: ReplicaID) throws {
        let id = server.description
        try replica.setSetting(Self.leaseKey(id), .blob(lease))
        for key in [serverKeyForAddress, Self.lastServerKey] where try replica.setting(key) != .text(id) {
            try replica.setSetting(key, .text(id))
        }
    }
}
