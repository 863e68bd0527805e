import Hub
import Retail
import RetailHub
import SyncEngine

/// Which central rules a benchmark hub runs.
enum BenchRules: String {
    case none
    /// `RetailRules`, as `storesync hub` runs them (without its logging of what they wrote).
    case retail

    /// Rules ready for `replica`: installed before the hub serves anyone, as `storesync hub`
    /// does, so the first merge does not pay for it.
    func make(for replica: Replica) throws -> (any CentralRules)? {
        switch self {
        case .none: return nil
        case .retail: return try RetailRules.install(on: replica)
        }
    }
}
