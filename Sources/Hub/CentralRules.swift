public import SyncEngine

/// Code the hub runs inside its merge transaction, after each pushed batch is applied.
///
/// The hub knows nothing of the domain: the retail rules (funnel, duplicate leads, stock
/// promotions) implement this and the CLI hands them to the hub. Whatever `afterMerge` writes
/// through `transaction` commits atomically with the batch and replicates like any other
/// change. Throwing rolls the batch back; the hub then reports an internal error to the pusher,
/// which retries later.
public protocol CentralRules: Sendable {
    func afterMerge(_ changeset: Changeset, result: ApplyResult, transaction: WriteTransaction) throws
}
