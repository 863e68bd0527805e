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
    /// Without: the plain workload pushed to a hub without central rules. With: the rules
    /// workload pushed to a hub without rules and to one running the retail rules, in the same
    /// run (`SyncBenchmark+Rules.swift`).
    var rules: Bool
    /// Network runs per hub (with `rules`, alternately with and without; the best counts).
    var rounds: Int
    var reporter: FigureReporter

    static let targetSeconds = 8.0
    static let targetCells = 1_000_000
    static var targetRate: Double { Double(targetCells) / targetSeconds }
    /// The hub's merge queue puts at most this many cells in one group commit.
    static let groupCells = 200_000

    func run() throws {
        if rules { return try runRulesComparison() }
        let scratch = try ScratchDirectory("sync")
        defer { scratch.remove() }
        let fsync = fsyncMedianMilliseconds(in: scratch.url)

        reporter.progress("writing \(terminals) terminal replicas of \(changes) cells each")
        let (replicas, rows) = try RetailWorkload(mix: .plain).writeFleet(terminals: terminals, cells: changes, in: scratch)
        let batches = try replicas.flatMap(Self.pushBatches)
        let cells = batches.reduce(0) { $0 + $1.cellCount }

        reporter.progress("local baseline: one Replica.apply per batch, \(batches.count) batches")
        let local = try Replica(path: scratch.path("local.sqlite"), schema: RetailSchema.all, options: .bench(durable: durable))
        let localSeconds = try measureSeconds {
            for changeset in batches { try Self.apply([changeset], to: local, rules: nil) }
        }
        reporter.progress("local baseline: Replica.apply(group:) in groups of up to \(Self.groupCells) cells")
        let grouped = try Replica(path: scratch.path("grouped.sqlite"), schema: RetailSchema.all, options: .bench(durable: durable))
        let groups = Self.groups(of: batches)
        let groupSeconds = try measureSeconds {
            for group in groups { try Self.apply(group, to: grouped, rules: nil) }
        }

        reporter.progress("\(client.rawValue) from \(terminals) terminals to a hub on loopback")
        var networkSeconds = Double.infinity
        for round in 1...rounds {
            let hub = try BenchHub(path: scratch.path("hub-\(round).sqlite"), durable: durable, scope: .store, rules: .none)
            defer { hub.stop() }
            let (seconds, acknowledged) = try syncConcurrently(replicas, with: hub.address)
            try Self.verify(hub: hub.replica, terminals: replicas, acknowledged: acknowledged)
            if try hub.replica.canonicalDump() != local.canonicalDump() {
                throw BenchError.verification("the hub's tables differ from the locally merged replica's")
            }
            networkSeconds = min(networkSeconds, seconds)
        }

        let issueShape = terminals == 100 && changes == 10_000
        reporter.header("storesync-bench sync: \(terminals) terminals × \(changes) cells, \(client == .push ? "pushed" : "synced (push + pull)") concurrently to one hub on loopback", notes: [
            "\(cells) cells in \(rows) rows (leads ~2/3 of cells, visits, sales), \(batches.count) PUSH batches, one store per terminal (store:ID scopes)",
            "hub and baselines synchronous=\(durable ? "FULL" : "NORMAL"); rules: none; best of \(rounds); fsync p50 \(fsync.map { formatNumber($0, decimals: 2) + " ms" } ?? "unknown"); load average \(loadAverage())",
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
    static func apply(_ group: [Changeset], to replica: Replica, rules: (any CentralRules)?) throws {
        if rules == nil, group.count == 1 {
            _ = try replica.apply(group[0])
            return
        }
        let results = try replica.apply(group: group) { changeset, result, transaction in
            try rules?.afterMerge(changeset, result: result, transaction: transaction)
        }
        for case .failure(let error) in results { throw error }
    }

    /// Every terminal pushes (or syncs) at once; the time runs from the release (connect and
    /// handshake included) until the last terminal is done. Returns each terminal's last
    /// acknowledged sequence.
    func syncConcurrently(_ replicas: [Replica], with address: SocketAddress) throws -> (Double, [UInt64]) {
        let fleet = TerminalFleet(replicas, hub: address, client: client)
        var acknowledged: [UInt64] = []
        let seconds = try measureSeconds {
            fleet.release()
            acknowledged = try fleet.wait()
        }
        return (seconds, acknowledged)
    }

    /// Every terminal's cursor on the hub reached its whole log.
    static func verify(hub: Replica, terminals: [Replica], acknowledged: [UInt64]) throws {
        for (terminal, pushed) in zip(terminals, acknowledged) {
            let cursor = try hub.cursor(for: terminal.id).received
            guard cursor == pushed, pushed == terminal.latestSequence else {
                throw BenchError.verification("hub holds a terminal up to \(cursor); it pushed up to \(pushed) of \(terminal.latestSequence)")
            }
        }
    }
}
