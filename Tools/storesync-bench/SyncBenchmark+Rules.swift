import Foundation
import Hub
import Retail
import SyncEngine

/// `storesync-bench sync --rules`: what the retail central rules cost the hub's merge.
///
/// The terminals write the rules mix (`RetailWorkload+Rules.swift`: stock signals that cross
/// safety thresholds, stage moves, duplicate phones); the stores (regions of ten, with
/// coordinates) and thresholds are registered on every hub before it serves anyone. The same
/// batches are pushed to a hub without rules and to a hub running `RetailRules`, alternately
/// `rounds` times (fresh hubs each time, the order swapped every round); the best time of each
/// counts. Issue 5's target: the hub with rules keeps at least 0.8× the throughput of the hub
/// without (with ÷ without cells/s, that is without ÷ with seconds).
///
/// Beside it, without network, the same batches in the merge queue's groups go through
/// `Replica.apply(group:)` with and without the rules (the rules after each batch inside the
/// transaction, as on the hub): the rules' own cost, free of loopback and scheduling noise.
extension SyncBenchmark {
    static let targetRulesRatio = 0.8

    func runRulesComparison() throws {
        let scratch = try ScratchDirectory("sync-rules")
        defer { scratch.remove() }
        let fsync = fsyncMedianMilliseconds(in: scratch.url)

        reporter.progress("registering \(terminals) stores and their thresholds")
        let operatorReplica = try Replica(path: scratch.path("operator.sqlite"), schema: RetailSchema.all, options: .bench(durable: false))
        let stores = try BenchStores(count: terminals, region: BenchStores.tenPerRegion, thresholds: true, in: operatorReplica)
        reporter.progress("writing \(terminals) terminal replicas of \(changes) cells each (rules mix)")
        let (replicas, rows) = try RetailWorkload(mix: .rules).writeFleet(terminals: terminals, cells: changes, in: scratch)
        let batches = try replicas.flatMap(Self.pushBatches)
        let cells = batches.reduce(0) { $0 + $1.cellCount }
        let groups = Self.groups(of: batches)

        var localSeconds: [BenchRules: Double] = [:]
        for variant in [BenchRules.none, .retail] {
            reporter.progress("local baseline: Replica.apply(group:) in \(groups.count) groups, rules: \(variant.rawValue)")
            let local = try Replica(path: scratch.path("local-\(variant.rawValue).sqlite"), schema: RetailSchema.all, options: .bench(durable: durable))
            try stores.register(on: local)
            let rules = try variant.make(for: local)
            localSeconds[variant] = try measureSeconds {
                for group in groups { try Self.apply(group, to: local, rules: rules) }
            }
        }

        var networkSeconds: [BenchRules: [Double]] = [:]
        var outcome = RuleCounts()
        for round in 1...rounds {
            for variant in round % 2 == 1 ? [BenchRules.none, .retail] : [.retail, .none] {
                reporter.progress("round \(round): \(client.rawValue) from \(terminals) terminals to a hub on loopback, rules: \(variant.rawValue)")
                let path = scratch.path("hub-\(variant.rawValue)-\(round).sqlite")
                let hub = try BenchHub(path: path, durable: durable, scope: .store, rules: variant, before: stores.register)
                let measured = Result { try syncConcurrently(replicas, with: hub.address) }
                hub.stop()
                let (seconds, acknowledged) = try measured.get()
                try Self.verify(hub: hub.replica, terminals: replicas, acknowledged: acknowledged)
                if variant == .retail { outcome = try RuleCounts(of: hub.replica) }
                networkSeconds[variant, default: []].append(seconds)
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        }
        let plain = networkSeconds[.none]?.min() ?? .infinity
        let ruled = networkSeconds[.retail]?.min() ?? .infinity
        let localPlain = localSeconds[.none] ?? .infinity
        let localRuled = localSeconds[.retail] ?? .infinity

        func times(_ variant: BenchRules) -> String {
            (networkSeconds[variant] ?? []).map { formatNumber($0, decimals: 2) + " s" }.joined(separator: ", ")
        }
        reporter.header("storesync-bench sync --rules: \(terminals) terminals × \(changes) cells, \(client == .push ? "pushed" : "synced (push + pull)") concurrently to a hub without and with the retail central rules", notes: [
            "\(cells) cells in \(rows) rows (rules mix: leads, visits, sales with their stock signals), \(batches.count) PUSH batches, one store per terminal (store:ID scopes)",
            "\(stores.stores) stores in regions of 10 with coordinates, \(stores.thresholds) thresholds (\(BenchStores.thresholdSKUs) SKUs per store, safety stock \(BenchStores.safetyStock)), registered on every hub first",
            "rules wrote (last round): \(outcome.summary)",
            "network runs without rules: \(times(.none)); with rules: \(times(.retail)) (best of \(rounds) counts)",
            "hubs and baselines synchronous=\(durable ? "FULL" : "NORMAL"); fsync p50 \(fsync.map { formatNumber($0, decimals: 2) + " ms" } ?? "unknown"); load average \(loadAverage())",
        ])
        let counts = [("terminals", "\(terminals)"), ("cells", "\(cells)"), ("rows", "\(rows)"), ("client", "\"\(client.rawValue)\"")]
        reporter.emit(Figure(scenario: "sync_total_without_rules", value: plain, unit: "s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "sync_total_with_rules", value: ruled, unit: "s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "sync_hub_merge_rate_without_rules", value: Double(cells) / plain / 1_000, unit: "kcells/s",
                             target: nil, details: counts))
        reporter.emit(Figure(scenario: "sync_hub_merge_rate_with_rules", value: Double(cells) / ruled / 1_000, unit: "kcells/s",
                             target: nil, details: counts))
        reporter.emit(Figure(scenario: "rules_throughput_ratio", value: plain / ruled, unit: "×",
                             target: .atLeast(Self.targetRulesRatio), details: counts))
        reporter.emit(Figure(scenario: "local_group_apply_rate_without_rules", value: Double(cells) / localPlain / 1_000, unit: "kcells/s",
                             target: nil, details: counts + [("transactions", "\(groups.count)")]))
        reporter.emit(Figure(scenario: "local_group_apply_rate_with_rules", value: Double(cells) / localRuled / 1_000, unit: "kcells/s",
                             target: nil, details: counts + [("transactions", "\(groups.count)")]))
        reporter.emit(Figure(scenario: "local_rules_throughput_ratio", value: localPlain / localRuled, unit: "×", target: nil, details: counts))
    }
}

/// What the central rules wrote on a hub, read back from its tables (counts only).
struct RuleCounts {
    var promotions = 0
    var duplicates = 0
    var reviews: [(action: String, count: Int)] = []

    init() {}

    init(of replica: Replica) throws {
        (promotions, duplicates, reviews) = try replica.read { database in
            let promotions = try database.fetchScalar("SELECT count(*) FROM promotions")?.integerValue ?? 0
            let duplicates = try database.fetchScalar("SELECT count(*) FROM leads WHERE canonical_id IS NOT NULL")?.integerValue ?? 0
            let reviews = try database.fetchAll("SELECT action, count(*) FROM rule_reviews GROUP BY action ORDER BY action").map {
                (action: $0[0].textValue ?? "?", count: Int($0[1].integerValue ?? 0))
            }
            return (Int(promotions), Int(duplicates), reviews)
        }
    }

    var summary: String {
        let reviewText = reviews.map { "\($0.count) \($0.action)" }.joined(separator: ", ")
        return "\(promotions) promotions, \(duplicates) leads linked as duplicates, reviews: \(reviewText.isEmpty ? "none" : reviewText)"
    }
}
