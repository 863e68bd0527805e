import Hub
import Logging
import Retail
import SyncEngine

/// The retail central rules plug into a hub's merge as they are.
extension RetailRules: CentralRules {}

/// The retail central rules as `storesync hub` runs them: inside each merge transaction, after
/// each pushed batch, logging what they wrote (counts only, never personal data).
struct RetailHubRules: CentralRules {
    let rules: RetailRules
    let logger: Logger

    /// Prepares `replica` for the rules now (their own tables, rebuilt from its data if needed).
    init(replica: Replica, logger: Logger) throws {
        self.rules = try RetailRules.install(on: replica)
        self.logger = logger
    }

    func afterMerge(_ changeset: Changeset, result: ApplyResult, transaction: WriteTransaction) throws {
        let outcome = try rules.judge(changeset, result: result, transaction: transaction)
        if !outcome.isEmpty {
            logger.info("central rules wrote", [
                ("source", "\(changeset.source)"), ("stage_compensations", "\(outcome.stageCompensations)"),
                ("duplicate_links", "\(outcome.duplicateLinks)"), ("promotions", "\(outcome.promotions)"), ("reviews", "\(outcome.reviews)"),
            ])
        }
    }
}
