public import SyncEngine
public import Wire

/// Decides, at the handshake, whether a peer may have the scope it asks for, and which rows that
/// scope holds. The hub knows nothing of stores or regions: the application supplies the policy
/// (the retail one maps `store:S` and `region:R` onto rows), as it supplies `CentralRules`.
public protocol ScopePolicy: Sendable {
    /// The rows a peer with `role` may exchange under `scope`; throws `ScopeRefusal` when it may
    /// not have that scope (the session then ends with `OUT_OF_SCOPE`).
    func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope

    /// Whether a session with this role and scope may ask for consolidated views (which span
    /// the hub's whole scope, beyond the session's own).
    func allowsViews(role: Role, scope: String) -> Bool
}

extension ScopePolicy {
    public func allowsViews(role: Role, scope: String) -> Bool { role != .terminal }
}

/// Why a scope was refused; the reason reaches the peer, so it must not hold personal data.
public struct ScopeRefusal: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Every peer sees everything: for development and for tests of the hub itself.
public struct UnlimitedScopePolicy: ScopePolicy {
    public init() {}
    public func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope { UnlimitedScope() }
}
