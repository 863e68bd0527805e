public import Hub
public import Logging
public import Retail
public import SyncEngine

/// The retail central rules plug into a hub's merge as they are.
extension RetailRules: CentralRules {}

/// The retail central rules as `storesync hub` runs them: inside each merge transaction, after
/// each pushed batch, logging what they wrote (counts only, never personal data).
public struct RetailHubRules: CentralRules {
    public let rules: RetailRules
    public let logger: Logger

    /// Prepares `replica` for the rules now (their own tables, rebuilt from its data if needed).
    public init(replica: Replica, logger: Logger) throws {
        self.rules = try RetailRules.install(on: replica)
        self.logger = logger
    }

    public func afterMerge(_ changeset: Changeset, result: ApplyResult, transaction: WriteTransaction) throws {
        let outcome = try rules.judge(changeset, result: result, transaction: transaction)
        if !outcome.isEmpty {
            logger.info("central rules wrote", [
                ("source", "\(changeset.source)"), ("stage_compensations", "\(outcome.stageCompensations)"),
                ("duplicate_links", "\(outcome.duplicateLinks)"), ("promotions", "\(outcome.promotions)"), ("reviews", "\(outcome.reviews)"),
            ])
        }
    }
}
