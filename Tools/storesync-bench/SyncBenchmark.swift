import Dispatch
import Foundation
import Hub
import Logging
import Net
import Retail
import SyncEngine
import Synchronization
import Terminal

/// `storesync-bench sync`: `terminals` terminals of one store each, each holding `changes` cells
/// of retail rows, sync concurrently with one hub over loopback. Reports the total time and the
/// hub's merge rate, beside the engine's local merge rate for the same batches measured in the
/// same run, without network: one `Replica.apply` per batch into a fresh replica, and
/// `Replica.apply(group:)` in groups as the hub's merge queue commits them (one transaction per
/// batch rewrites the same index pages into the WAL again and again as the tables grow, which
/// group commit avoids).
///
/// A change is one cell: one column value of one row. The issue's target is 1,000,000 cells from
/// 100 terminals in at most 8 s, that is at least 125,000 cells/s.
struct SyncBenchmark {
    /// How the terminals talk to the hub.
    enum Client: String {
        /// `PushClient`: HELLO and PUSHes (the transfer the target is about).
        case push
        /// `SyncClient.syncOnce`: what `storesync sync` does, push then pull (each terminal's pull
        /// reads past every other store's rows, which its scope filters out).
        case sync
    }

    var terminals: Int
    var changes: Int
    var client: Client
    var durable: Bool
    /// The hub's central rules (nil: none). The local baselines run the same rules after each
    /// batch, so the ratio stays network against no network.
    var rules: (any CentralRules)?
    var reporter: FigureReporter

    static let targetSeconds = 8.0
    static let targetCells = 1_000_000
    static var targetRate: Double { Double(targetCells) / targetSeconds }
    /// The hub's merge queue puts at most this many cells in one group commit.
    static let groupCells = 200_000

    func run() throws {
        let scratch = try ScratchDirectory("sync")
        defer { scratch.remove() }
        let fsync = fsyncMedianMilliseconds(in: scratch.url)

        reporter.progress("writing \(terminals) terminal replicas of \(changes) cells each")
        let workload = try RetailWorkload()
        var replicas: [Replica] = []
        var rows = 0
        for terminal in 0..<terminals {
            let replica = try Replica(path: scratch.path("terminal-\(terminal).sqlite"), schema: RetailSchema.all)
            rows += try workload.writeDay(terminal: terminal, store: storeID(terminal + 1), cells: changes, into: replica)
            replicas.append(replica)
        }
        let batches = try replicas.flatMap(Self.pushBatches)
        let cells = batches.reduce(0) { $0 + $1.cellCount }

        reporter.progress("local baseline: one Replica.apply per batch, \(batches.count) batches")
        let local = try Replica(path: scratch.path("local.sqlite"), schema: RetailSchema.all, options: .bench(durable: durable))
        let localSeconds = try measureSeconds {
            for changeset in batches { try apply([changeset], to: local) }
        }
        reporter.progress("local baseline: Replica.apply(group:) in groups of up to \(Self.groupCells) cells")
        let grouped = try Replica(path: scratch.path("grouped.sqlite"), schema: RetailSchema.all, options: .bench(durable: durable))
        let groups = Self.groups(of: batches)
        let groupSeconds = try measureSeconds {
            for group in groups { try apply(group, to: grouped) }
        }

        reporter.progress("\(client.rawValue) from \(terminals) terminals to a hub on loopback")
        let hub = try BenchHub(path: scratch.path("hub.sqlite"), durable: durable, scope: .store, rules: rules)
        defer { hub.stop() }
        let (networkSeconds, acknowledged) = try syncConcurrently(replicas, with: hub.address)
        try verify(hub: hub.replica, local: local, terminals: replicas, acknowledged: acknowledged)

        let issueShape = terminals == 100 && changes == 10_000
        reporter.header("storesync-bench sync: \(terminals) terminals × \(changes) cells, \(client == .push ? "pushed" : "synced (push + pull)") concurrently to one hub on loopback", notes: [
            "\(cells) cells in \(rows) rows (leads ~2/3 of cells, visits, sales), \(batches.count) PUSH batches, one store per terminal (store:ID scopes)",
            "hub and baselines synchronous=\(durable ? "FULL" : "NORMAL"); rules: \(rules.map { "\(type(of: $0))" } ?? "none"); fsync p50 \(fsync.map { formatNumber($0, decimals: 2) + " ms" } ?? "unknown"); load average \(loadAverage())",
        ])
        let counts = [("terminals", "\(terminals)"), ("cells", "\(cells)"), ("rows", "\(rows)"), ("client", "\"\(client.rawValue)\"")]
        reporter.emit(Figure(scenario: "sync_total", value: networkSeconds, unit: "s",
                             target: issueShape ? .atMost(Self.targetSeconds) : nil, details: counts))
        reporter.emit(Figure(scenario: "sync_hub_merge_rate", value: Double(cells) / networkSeconds / 1_000, unit: "kcells/s",
                             target: .atLeast(Self.targetRate / 1_000), details: counts))
        reporter.emit(Figure(scenario: "local_apply_rate", value: Double(cells) / localSeconds / 1_000, unit: "kcells/s",
                             target: nil, details: counts + [("transactions", "\(batches.count)")]))
        reporter.emit(Figure(scenario: "local_group_apply_rate", value: Double(cells) / groupSeconds / 1_000, unit: "kcells/s",
                             target: nil, details: counts + [("transactions", "\(groups.count)")]))
        reporter.emit(Figure(scenario: "sync_to_local_ratio", value: localSeconds / networkSeconds, unit: "×", target: nil))
        reporter.emit(Figure(scenario: "sync_to_local_group_ratio", value: groupSeconds / networkSeconds, unit: "×", target: nil))
    }

    /// The batches a terminal pushes, read as `PushClient` and `SyncSession` read them.
    static func pushBatches(of replica: Replica) throws -> [Changeset] {
        let rowBudget = 20_000 / RetailSchema.widestTableColumns
        var batches: [Changeset] = []
        var scanned: UInt64 = 0
        while true {
            let batch = try replica.nextBatch(since: scanned, limit: rowBudget, onlyLocalWrites: true)
            guard batch.changeset.toSequence > scanned else { return batches }
            var changeset = batch.changeset
            changeset.fromSequence = batches.last?.toSequence ?? 0
            scanned = changeset.toSequence
            if !changeset.isEmpty { batches.append(changeset) }
            if !batch.more { return batches }
        }
    }

    /// Consecutive batches in groups of at most `groupCells` cells, as the merge queue takes them.
    static func groups(of batches: [Changeset]) -> [[Changeset]] {
        var groups: [[Changeset]] = []
        var cells = 0
        for batch in batches {
            if groups.isEmpty || cells + batch.cellCount > groupCells {
                groups.append([])
                cells = 0
            }
            groups[groups.count - 1].append(batch)
            cells += batch.cellCount
        }
        return groups
    }

    /// One batch: `Replica.apply`; several: one group commit, as the hub's merge queue does.
    /// With rules, they run after each batch inside the transaction, as on the hub.
    private func apply(_ group: [Changeset], to replica: Replica) throws {
        if rules == nil, group.count == 1 {
            _ = try replica.apply(group[0])
            return
        }
        let results = try replica.apply(group: group) { changeset, result, transaction in
            try rules?.afterMerge(changeset, result: result, transaction: transaction)
        }
        for case .failure(let error) in results { throw error }
    }

    /// One thread per terminal, all released at once; the time runs from the release (connect
    /// and handshake included) until the last terminal is done. Returns each terminal's last
    /// acknowledged sequence.
    private func syncConcurrently(_ replicas: [Replica], with address: SocketAddress) throws -> (Double, [UInt64]) {
        let gate = DispatchSemaphore(value: 0)
        let finished = DispatchGroup()
        let results = Mutex<[Int: Result<UInt64, any Error>]>([:])
        for (index, replica) in replicas.enumerated() {
            finished.enter()
            let scope = "store:" + storeID(index + 1)
            let client = self.client
            let thread = Thread {
                gate.wait()
                let result = Result<UInt64, any Error> {
                    switch client {
                    case .push:
                        return try PushClient(replica: replica, hub: address, scope: scope).pushAll().acknowledged
                    case .sync:
                        var options = SyncOptions(hub: address, scope: scope)
                        options.widestTableColumns = RetailSchema.widestTableColumns
                        return try SyncClient(replica: replica, options: options, logger: Logger.discarding).syncOnce().pushCursor
                    }
                }
                results.withLock { $0[index] = result }
                finished.leave()
            }
            thread.name = "bench.terminal.\(index)"
            thread.start()
        }
        let seconds = measureSeconds {
            for _ in replicas { gate.signal() }
            finished.wait()
        }
        let outcomes = results.withLock { $0 }
        let acknowledged = try replicas.indices.map { index in
            guard let outcome = outcomes[index] else { throw BenchError.verification("terminal \(index) did not report") }
            return try outcome.get()
        }
        return (seconds, acknowledged)
    }

    /// Every terminal's cursor on the hub reached its whole log, and (without rules) the hub's
    /// user tables are byte-identical to the locally merged replica's.
    private func verify(hub: Replica, local: Replica, terminals: [Replica], acknowledged: [UInt64]) throws {
        for (terminal, pushed) in zip(terminals, acknowledged) {
            let cursor = try hub.cursor(for: terminal.id).received
            guard cursor == pushed, pushed == terminal.latestSequence else {
                throw BenchError.verification("hub holds a terminal up to \(cursor); it pushed up to \(pushed) of \(terminal.latestSequence)")
            }
        }
        if rules == nil, try hub.canonicalDump() != local.canonicalDump() {
            throw BenchError.verification("the hub's tables differ from the locally merged replica's")
        }
    }
}
