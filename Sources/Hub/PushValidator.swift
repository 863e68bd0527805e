public import SyncEngine

/// Checks each pushed changeset against the application's schema before anything of it is
/// applied (PROTOCOL.md §5.7 INVALID_VALUE, Protocol/SCHEMA.md). The hub knows no table's
/// meaning: the application supplies the check, as it supplies `CentralRules` and `ScopePolicy`.
///
/// Called on the session's connection queue for every PUSH, so it must be pure and quick: no
/// database, no blocking. A refusal refuses the whole batch: nothing of it is merged, the
/// pusher gets INVALID_VALUE with `PushRefusal.reason`, and the session ends.
public protocol PushValidator: Sendable {
    func validate(_ changeset: Changeset) throws(PushRefusal)
}

/// Why a batch breaks the schema: table, column and reason. It reaches the peer and the log,
/// so it must never hold a cell's value (names and phones are personal data).
public struct PushRefusal: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
