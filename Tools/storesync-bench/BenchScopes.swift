import Hub
import Retail
import SyncEngine
import Wire

/// Which rows the benchmark hub's sessions see.
enum BenchScope: String {
    /// The retail deployment's: a terminal sees its store's rows (`store:ID`, as `storesync hub`
    /// grants it, without the store-registration check).
    case store
    /// Every terminal sees every row (a hub without a scope policy).
    case all

    var policy: any ScopePolicy {
        switch self {
        case .store: return StoreScopePolicy()
        case .all: return UnlimitedScopePolicy()
        }
    }

    /// The store the fanout benchmark writes to: its writer's and its observed receiver's.
    static let writtenStore = storeID(1)

    /// The store of the `index`th terminal of a fleet: ten terminals per store, S001 first.
    static func store(ofTerminal index: Int) -> String {
        storeID(index / 10 + 1)
    }
}

/// The id of the `number`th store (from 1): S001, S002, …
func storeID(_ number: Int) -> String {
    "S" + String(number).leftPadded(to: 3)
}

/// Grants a terminal asking for `store:ID` the rows of store ID, with the retail row filter.
struct StoreScopePolicy: ScopePolicy {
    func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope {
        guard role == .terminal, let requested = NodeScope(scope), case .store = requested else {
            throw ScopeRefusal("the benchmark hub serves terminals asking for store:ID")
        }
        return RetailRowScope(scope: requested, directory: nil)
    }
}
