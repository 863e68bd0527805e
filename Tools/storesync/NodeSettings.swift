import Foundation
import SyncEngine
import Wire

/// What kind of node a replica file is and what it sees, kept in `sync_state` by `storesync init`.
struct NodeSettings {
    enum Kind: String {
        case terminal, hub, hq

        var role: Role {
            switch self {
            case .terminal: return .terminal
            case .hub: return .hub
            case .hq: return .hq
            }
        }
    }

    var kind: Kind
    /// `store:<id>` for a terminal, `region:<id>` for a hub, `all` for HQ.
    var scope: String

    static func read(_ replica: Replica) throws -> NodeSettings {
        guard let kindText = try replica.setting("node_kind")?.textValue, let kind = Kind(rawValue: kindText),
              let scope = try replica.setting("node_scope")?.textValue else {
            throw CommandError("\(replica.path) was not initialised with `storesync init`")
        }
        return NodeSettings(kind: kind, scope: scope)
    }

    func write(_ replica: Replica) throws {
        try replica.setSetting("node_kind", .text(kind.rawValue))
        try replica.setSetting("node_scope", .text(scope))
    }
}
