import Dispatch
import Foundation
import Logging
import SQLite
import SyncEngine
import Synchronization

/// The hub's one writer: merges the pending pushes of every session in one transaction
/// (group commit), then answers each in the order it arrived.
///
/// Sessions never touch the write connection; they enqueue and get called back on the merge
/// queue once their batch is durable (or refused). While one group commits, new pushes pile
/// up and go together into the next, so the commit cost is shared under load.
final class MergeQueue: Sendable {
    typealias Completion = @Sendable (Result<PushOutcome, SyncError>) -> Void

    /// What became of one push.
    enum PushOutcome: Sendable {
        case applied(ApplyResult)
        /// Everything up to `toSequence` of that source was already durable: nothing to do.
        case alreadyApplied
    }

    private struct Pending {
        var changeset: Changeset
        var completion: Completion
    }

    /// Work of the hub's own on the write connection (lease records), run before the next group.
    private struct PendingWrite {
        var body: @Sendable (Database) throws -> Void
        var completion: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var pending: [Pending] = []
        var writes: [PendingWrite] = []
        var draining = false
        var stopped = false
    }

    private let replica: Replica
    private let rules: (any CentralRules)?
    private let logger: Logger
    private let queue = DispatchQueue(label: "storesync.hub.merge")
    private let state = Mutex(State())
    /// Called on the merge queue after each commit that changed something, with the latest
    /// sequence before the commit and after it: the commit's rows are the ones in between.
    private let onCommit: @Sendable (_ since: UInt64, _ latest: UInt64) -> Void
    /// At most this many cells go into one group (a huge group would hold the write lock long).
    private let maxGroupCells: Int

    /// Push cursors the handshake reads without the database; moved forward after each commit.
    let cursors: PushCursorCache?

    init(replica: Replica, rules: (any CentralRules)?, maxGroupCells: Int = 200_000, cursors: PushCursorCache? = nil, logger: Logger,
         onCommit: @escaping @Sendable (_ since: UInt64, _ latest: UInt64) -> Void) {
        self.cursors = cursors
        self.replica = replica
        self.rules = rules
        self.logger = logger
        self.maxGroupCells = maxGroupCells
        self.onCommit = onCommit
    }

    /// Queues a push; `completion` runs on the merge queue once it is durable or refused.
    /// Returns false (and never calls `completion`) when the hub is stopping.
    @discardableResult
    func submit(_ changeset: Changeset, completion: @escaping Completion) -> Bool {
        enqueue { $0.pending.append(Pending(changeset: changeset, completion: completion)) }
    }

    /// Queues work of the hub's own on the write connection, in a transaction of its own before
    /// the next group; `completion` runs on the merge queue once it committed (nil) or failed.
    /// Returns false (and never calls `completion`) when the hub is stopping.
    @discardableResult
    func submitWrite(_ body: @escaping @Sendable (Database) throws -> Void, completion: @escaping @Sendable ((any Error)?) -> Void) -> Bool {
        enqueue { $0.writes.append(PendingWrite(body: body, completion: completion)) }
    }

    /// Adds work with `add` unless the hub is stopping, and starts a drain if none runs.
    private func enqueue(_ add: (inout State) -> Void) -> Bool {
        state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            add(&state)
            if !state.draining {
                state.draining = true
                // Scheduled under the lock, so `stop()` cannot slip between the append and the drain.
                queue.async { self.drain() }
            }
            return true
        }
    }

    /// Refuses new pushes and returns once every accepted one has been answered.
    func stop() {
        state.withLock { $0.stopped = true }
        queue.sync {}
    }

    private func drain() {
        while true {
            let writes = state.withLock { state -> [PendingWrite] in
                defer { state.writes = [] }
                return state.writes
            }
            if !writes.isEmpty { runWrites(writes) }
            let group = state.withLock { state -> [Pending] in
                var cells = 0
                var taken = 0
                while taken < state.pending.count, taken == 0 || cells + state.pending[taken].changeset.cellCount <= maxGroupCells {
                    cells += state.pending[taken].changeset.cellCount
                    taken += 1
                }
                let group = Array(state.pending.prefix(taken))
                state.pending.removeFirst(taken)
                if group.isEmpty && state.writes.isEmpty { state.draining = false }
                return group
            }
            if group.isEmpty {
                if state.withLock({ $0.draining }) { continue }
                return
            }
            commit(group)
        }
    }

    /// The hub's own writes, in one transaction (one fsync for a burst of handshakes).
    private func runWrites(_ writes: [PendingWrite]) {
        let failure: (any Error)?
        do {
            try replica.write { transaction in
                for write in writes { try write.body(transaction.database) }
            }
            failure = nil
        } catch {
            logger.error("hub write failed", [("error", "\(error)")])
            failure = error
        }
        for write in writes { write.completion(failure) }
    }

    private func commit(_ group: [Pending]) {
        let since = replica.latestSequence
        // Cursors decide what is new, a repeat, or a gap; pushes of one source in one group chain.
        var cursors: [ReplicaID: UInt64] = [:]
        var toMerge: [Int] = []
        var outcomes = [Result<PushOutcome, SyncError>?](repeating: nil, count: group.count)
        for (index, pending) in group.enumerated() {
            let changeset = pending.changeset
            let cursor: UInt64
            if let known = cursors[changeset.source] {
                cursor = known
            } else {
                do {
                    cursor = try replica.cursor(for: changeset.source).received
                } catch {
                    outcomes[index] = .failure(error as? SyncError ?? .storage(.init(code: 1, message: "\(error)")))
                    continue
                }
            }
            if changeset.toSequence <= cursor && changeset.fromSequence <= cursor && changeset.toSequence > 0 {
                outcomes[index] = .success(.alreadyApplied)
            } else if changeset.fromSequence > cursor {
                outcomes[index] = .failure(.invalidChangeset("push starts at \(changeset.fromSequence) but the hub holds this source only up to \(cursor)"))
            } else {
                toMerge.append(index)
                cursors[changeset.source] = changeset.toSequence
            }
        }

        if !toMerge.isEmpty {
            let changesets = toMerge.map { group[$0].changeset }
            do {
                let results = try apply(changesets)
                for (position, index) in toMerge.enumerated() {
                    outcomes[index] = results[position].map { .applied($0) }
                }
            } catch {
                // One batch tripped the rules or the disk failed: retry each alone so the others commit.
                logger.warning("group commit failed; retrying \(changesets.count) batches one by one", [("error", "\(error)")])
                for index in toMerge {
                    do {
                        outcomes[index] = try apply([group[index].changeset])[0].map { .applied($0) }
                    } catch {
                        outcomes[index] = .failure(error as? SyncError ?? .storage(.init(code: 1, message: "\(error)")))
                    }
                }
            }
        }

        if let cursors = self.cursors {
            for (index, pending) in group.enumerated() {
                if case .success(.applied(let result))? = outcomes[index], let received = result.receivedCursor {
                    cursors.advance(pending.changeset.source, to: received)
                }
            }
        }
        for (index, pending) in group.enumerated() {
            pending.completion(outcomes[index] ?? .failure(.storage(.init(code: 1, message: "push was not processed"))))
        }
        if outcomes.contains(where: { if case .success(.applied(let result))? = $0 { return !result.isNoOp || result.receivedCursor != nil } else { return false } }) {
            onCommit(since, replica.latestSequence)
        }
    }

    private func apply(_ changesets: [Changeset]) throws -> [Result<ApplyResult, SyncError>] {
        guard let rules else { return try replica.apply(group: changesets) }
        return try replica.apply(group: changesets) { changeset, result, transaction in
            try rules.afterMerge(changeset, result: result, transaction: transaction)
        }
    }
}
