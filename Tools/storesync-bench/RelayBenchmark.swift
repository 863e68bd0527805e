import Foundation
import Hub
import Net
import Retail
import RetailHub
import SyncEngine

/// `storesync-bench relay`: the terminals' day reaching HQ through a regional hub, against the
/// same day pushed by the same terminals straight to HQ, measured in the same run (issue 6:
/// relay time ≤ 2× direct time).
///
/// Shape, all in this process on loopback: HQ is a hub of scope `all` that knows every store
/// (`stores` rows with their region, registered before it serves). The regional hub starts
/// empty, with scope `region:R1`, and relays to HQ as `storesync hub --upstream` does (both
/// hubs are `RetailHubNode`s, the assembly `storesync hub` runs); it receives its stores from HQ through the relay before any terminal
/// connects (a terminal of a store the hub does not know is refused). Then `terminals`
/// terminals (one store each, all in R1) push their day concurrently (`PushClient`: HELLO and
/// PUSHes, as in `sync`) to the regional hub, or, on the direct path, to a fresh HQ.
///
/// Time runs from the release of the terminals until a count of HQ's tables on a reader of
/// its file finds every row (`RowArrival`): on the relay path that includes the regional
/// merge, the relay reading the regional file and pushing, and HQ's merge, in a pipeline.
/// Both hubs (and the terminals) share this machine's cores, as they never would in a
/// deployment: the regional merge and HQ's merge compete for the same CPUs here.
struct RelayBenchmark {
    var terminals: Int
    var changes: Int
    var durable: Bool
    var rules: BenchRules
    var rounds: Int
    var deadline: Duration
    var reporter: FigureReporter

    static let region = "R1"
    static let targetRatio = 2.0
    static let storesDeadline: Duration = .seconds(30)
    static let settleLimitNanos: UInt64 = 30_000_000_000

    private enum Path: String {
        case direct
        case relay
    }

    func run() throws {
        let scratch = try ScratchDirectory("relay")
        defer { scratch.remove() }
        let fsync = fsyncMedianMilliseconds(in: scratch.url)

        reporter.progress("registering \(terminals) stores of region \(Self.region)")
        let operatorReplica = try Replica(path: scratch.path("operator.sqlite"), schema: RetailSchema.all, options: .bench(durable: false))
        let stores = try BenchStores(count: terminals, region: { _ in Self.region }, thresholds: rules == .retail, in: operatorReplica)
        let mix: RetailWorkload.Mix = rules == .retail ? .rules : .plain
        reporter.progress("writing \(terminals) terminal replicas of \(changes) cells each (\(mix.rawValue) mix)")
        let (replicas, rows) = try RetailWorkload(mix: mix).writeFleet(terminals: terminals, cells: changes, in: scratch)
        let cells = try replicas.flatMap(SyncBenchmark.pushBatches).reduce(0) { $0 + $1.cellCount }
        let arrival = try RowArrival(terminals: replicas)

        var seconds: [Path: [Double]] = [:]
        var cpuSeconds: [Path: [Double]] = [:]
        var disconnections = 0
        var regionalSeconds: [Double] = []
        var relayRows: [String] = []
        var firstDump: String?
        for round in 1...rounds {
            for path in round % 2 == 1 ? [Path.direct, .relay] : [.relay, .direct] {
                reporter.progress("round \(round): \(terminals) terminals push to \(path == .direct ? "HQ" : "the regional hub, relayed to HQ")")
                let hq = try startHQ(path: scratch.path("hq-\(path.rawValue)-\(round).sqlite"), stores: stores)
                defer { hq.stop() }
                switch path {
                case .direct:
                    let times = try pushDirect(replicas, to: hq, arrival: arrival)
                    seconds[path, default: []].append(times.arrived)
                    cpuSeconds[path, default: []].append(times.cpu)
                case .relay:
                    let (times, link) = try pushThroughRegion(replicas, to: hq, stores: stores, arrival: arrival,
                                                                 regionalPath: scratch.path("region-\(round).sqlite"))
                    seconds[path, default: []].append(times.arrived)
                    cpuSeconds[path, default: []].append(times.cpu)
                    regionalSeconds.append(times.pushed)
                    disconnections += link.disconnections
                    relayRows.append("\(link.pushedRows) up, \(link.pulledRows) down")
                }
                // Without rules, both paths must leave HQ with the same rows, cells and versions.
                if rules == .none {
                    let dump = try hq.replica.canonicalDump(includeVersions: true)
                    if let firstDump, dump != firstDump {
                        throw BenchError.verification("HQ's tables after the \(path.rawValue) path differ from HQ's after the other path")
                    }
                    firstDump = firstDump ?? dump
                }
            }
        }

        let direct = seconds[.direct]?.min() ?? .infinity
        let relay = seconds[.relay]?.min() ?? .infinity
        func times(_ path: Path) -> String {
            zip(seconds[path] ?? [], cpuSeconds[path] ?? []).map {
                formatNumber($0, decimals: 2) + " s (CPU " + formatNumber($1, decimals: 2) + " s)"
            }.joined(separator: ", ")
        }
        let directCPU = cpuSeconds[.direct]?.min() ?? .infinity
        let relayCPU = cpuSeconds[.relay]?.min() ?? .infinity
        reporter.header("storesync-bench relay: \(terminals) terminals × \(changes) cells reach HQ through a regional hub, against straight to HQ", notes: [
            "\(cells) cells in \(rows) rows (\(mix.rawValue) mix), one store per terminal, \(stores.stores) stores in region \(Self.region); hubs in this process on loopback",
            "relay: terminals → regional hub (region:\(Self.region)) → live relay agent (role hub, every row HQ did not write) → HQ; direct: terminals → HQ",
            "time: from the terminals' release until a count on HQ finds every row; runs direct: \(times(.direct)); relay: \(times(.relay)) (best of \(rounds) counts)",
            "relay runs: the regional hub acknowledged the terminals' last push after \(regionalSeconds.map { formatNumber($0, decimals: 2) + " s" }.joined(separator: ", ")); relay disconnections: \(disconnections); rows the relay moved: \(relayRows.joined(separator: "; "))",
            "rules on every hub: \(rules.rawValue); synchronous=\(durable ? "FULL" : "NORMAL"); fsync p50 \(fsync.map { formatNumber($0, decimals: 2) + " ms" } ?? "unknown"); load average \(loadAverage())",
        ])
        let counts = [("terminals", "\(terminals)"), ("cells", "\(cells)"), ("rows", "\(rows)"), ("rules", "\"\(rules.rawValue)\"")]
        reporter.emit(Figure(scenario: "relay_total", value: relay, unit: "s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "direct_total", value: direct, unit: "s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "relay_rate", value: Double(cells) / relay / 1_000, unit: "kcells/s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "direct_rate", value: Double(cells) / direct / 1_000, unit: "kcells/s", target: nil, details: counts))
        reporter.emit(Figure(scenario: "relay_to_direct_time_ratio", value: relay / direct, unit: "×",
                             target: .atMost(Self.targetRatio), details: counts))
        reporter.emit(Figure(scenario: "relay_to_direct_cpu_ratio", value: relayCPU / directCPU, unit: "×", target: nil, details: counts))
    }

    /// HQ: every store registered, scope `all`, serving terminals of registered stores and
    /// regional hubs of their region.
    private func startHQ(path: String, stores: BenchStores) throws -> BenchHub {
        let replica = try Replica(path: path, schema: RetailSchema.all, options: .bench(durable: durable))
        try stores.register(on: replica)
        return try BenchHub(retail: replica, scope: .all, rules: rules, label: "bench.hq")
    }

    /// Terminals → HQ.
    private func pushDirect(_ replicas: [Replica], to hq: BenchHub, arrival: RowArrival) throws -> PathTimes {
        try timePushes(replicas, to: hq, watching: hq, arrival: arrival)
    }

    /// Terminals → regional hub → HQ. Returns the path's times and what the relay did.
    private func pushThroughRegion(_ replicas: [Replica], to hq: BenchHub, stores: BenchStores, arrival: RowArrival,
                                   regionalPath: String) throws -> (PathTimes, RelayTally.Counts) {
        let replica = try Replica(path: regionalPath, schema: RetailSchema.all, options: .bench(durable: durable))
        let tally = RelayTally()
        let regional = try BenchHub(retail: replica, scope: .region(Self.region), rules: rules, upstream: hq.address,
                                    label: "bench.region", relayEvents: tally.record)
        defer { regional.stop() }
        try waitForStores(stores.stores, in: replica)
        let times = try timePushes(replicas, to: regional, watching: hq, arrival: arrival)
        // Once HQ holds everything, the relay's session may still be pulling; its counts are
        // complete at the first report after it pushed every row.
        let settleStart = monotonicNanos()
        while tally.current.pushedRows < arrival.total, monotonicNanos() - settleStart < Self.settleLimitNanos { usleep(10_000) }
        return (times, tally.current)
    }

    /// Seconds from the terminals' release until the last terminal's last PUSH_ACK, and until
    /// HQ held every row; CPU seconds this process used meanwhile (every hub, the relay, the
    /// terminals' clients).
    struct PathTimes {
        var pushed: Double
        var arrived: Double
        var cpu: Double
    }

    /// Releases the terminals towards `hub` and times until `watched` holds every row; then
    /// checks that `hub` acknowledged every terminal's whole log.
    private func timePushes(_ replicas: [Replica], to hub: BenchHub, watching watched: BenchHub, arrival: RowArrival) throws -> PathTimes {
        let reader = try watched.replica.makeReader()
        let base = watched.replica.latestSequence
        let fleet = TerminalFleet(replicas, hub: hub.address, client: .push)
        let cpu = processCPUSeconds()
        let start = monotonicNanos()
        fleet.release()
        let arrived = Result { try arrival.wait(on: watched.replica, reader: reader, base: base, deadline: deadline) }
        let cpuUsed = processCPUSeconds() - cpu
        let acknowledged = try fleet.wait()
        try SyncBenchmark.verify(hub: hub.replica, terminals: replicas, acknowledged: acknowledged)
        return PathTimes(pushed: Double(fleet.finishedAt - start) / 1e9, arrived: Double(try arrived.get() - start) / 1e9, cpu: cpuUsed)
    }

    /// Waits until the regional hub received its stores from HQ through the relay.
    private func waitForStores(_ count: Int, in replica: Replica) throws {
        let start = monotonicNanos()
        let limit = UInt64(Self.storesDeadline.components.seconds) * 1_000_000_000
        while true {
            let held = try replica.read { database in try database.fetchScalar("SELECT count(*) FROM stores")?.integerValue ?? 0 }
            if held >= count { return }
            guard monotonicNanos() - start < limit else {
                throw BenchError.timeout("the regional hub received \(held) of \(count) stores from HQ in \(Self.storesDeadline)")
            }
            usleep(10_000)
        }
    }
}
