import Dispatch
import Foundation
import Hub
import Logging
import Net
import Retail
import SyncEngine
import Synchronization
import Terminal
import Wire

/// `storesync-bench fanout`: with `terminals` terminals connected live to one hub, the latency
/// from a committed local write on one terminal to the row being in another terminal's replica.
///
/// Shape: the hub and `agents` full terminals (a replica, a `LiveSyncAgent` and its thread each;
/// the first writes, the second is the observed receiver) run in this process; `terminals -
/// agents` passive live sessions run in a child process: each answers every NOTIFY with a PULL
/// and drops the batch. Terminals are ten to a store (writer and receiver in S001). With `scope`
/// `.store` each sees its store's rows, as retail terminals do; with `.all` every terminal gets
/// every write. The hub does its whole share of the fanout; left out is hundreds of terminal
/// databases applying batches on this machine's two cores, work a real fleet does on its own
/// devices (`--agents` puts as many back as the machine bears). The child keeps the clients'
/// CPU and threads apart from the hub's.
///
/// Writes go one at a time: each waits until every terminal whose scope holds the row has it
/// and the fleet is quiet again. The first `warmupWrites` are not counted.
struct FanoutBenchmark {
    var terminals: Int
    var writes: Int
    var agents: Int
    var scope: BenchScope
    var durable: Bool
    var rules: BenchRules
    var reporter: FigureReporter

    static let warmupWrites = 10
    static let targetP50 = 1.0
    static let targetP99 = 5.0
    static let waitLimit: Duration = .seconds(30)

    /// What the agents' event handlers report to the benchmark.
    private final class AgentEvents: Sendable {
        private let state = Mutex<(synced: Set<Int>, failure: String?, stopping: Bool)>(([], nil, false))
        func synced(_ index: Int) { state.withLock { _ = $0.synced.insert(index) } }
        func failed(_ index: Int, _ failure: SyncFailure) {
            state.withLock { state in
                if !state.stopping && state.failure == nil { state.failure = "agent \(index): \(failure)" }
            }
        }
        var syncedCount: Int { state.withLock { $0.synced.count } }
        var failure: String? { state.withLock { $0.failure } }
        func stop() { state.withLock { $0.stopping = true } }
    }

    func run() throws {
        guard agents >= 2, terminals >= agents else {
            throw BenchError.setup("fanout needs --agents ≥ 2 (a writer and a receiver) and --terminals ≥ --agents")
        }
        let scratch = try ScratchDirectory("fanout")
        defer { scratch.remove() }
        let fsync = fsyncMedianMilliseconds(in: scratch.url)
        let hub = try BenchHub(path: scratch.path("hub.sqlite"), durable: durable, scope: scope, rules: rules)
        defer { hub.stop() }
        let idleRoundTrip = try pingRoundTrip(hub.address)

        reporter.progress("starting \(agents) live sync agents")
        let events = AgentEvents()
        var replicas: [Replica] = []
        var probes: [ArrivalProbe] = []
        var liveAgents: [LiveSyncAgent] = []
        defer {
            events.stop()
            for agent in liveAgents { agent.stop() }
        }
        for index in 0..<agents {
            let replica = try Replica(path: scratch.path("agent-\(index).sqlite"), schema: RetailSchema.all,
                                      options: .bench(durable: durable))
            let probe = ArrivalProbe()
            var options = SyncOptions(hub: hub.address, scope: "store:\(BenchScope.store(ofTerminal: index))")
            options.widestTableColumns = RetailSchema.widestTableColumns
            let agent = LiveSyncAgent(replica: replica, options: options, logger: Logger(label: "bench.agent", minimumLevel: .warning)) { event in
                switch event {
                case .synced:
                    probe.check(replica)
                    events.synced(index)
                case .disconnected(let failure):
                    events.failed(index, failure)
                case .connected, .backingOff:
                    break
                }
            }
            agent.start()
            replicas.append(replica)
            probes.append(probe)
            liveAgents.append(agent)
        }

        reporter.progress("connecting \(terminals - agents) passive live sessions from a child process")
        let passive = try PassiveFleet(count: terminals - agents, firstTerminal: agents, scope: scope, hub: hub.address)
        defer { passive.stop() }
        try waitUntil("every live sync agent caught up") {
            if let failure = events.failure { throw BenchError.protocolFailure(failure) }
            return events.syncedCount == agents
        }
        let sessions = hub.server.sessionCount
        guard sessions == terminals else {
            throw BenchError.verification("the hub holds \(sessions) sessions, \(terminals) terminals connected")
        }

        reporter.progress("\(sessions) sessions live; \(writes) writes after \(Self.warmupWrites) warm-up writes")
        let workload = try RetailWorkload()
        var commits: [UInt64] = []
        var arrivals: [UInt64] = []
        var fanouts: [UInt64] = []
        var pulls: [Int] = []
        var cpuAtStart: (hub: UInt64, clients: UInt64) = (0, 0)
        var cpuAtEnd: (hub: UInt64, clients: UInt64) = (0, 0)
        // The agents after the writer whose scope holds the writes; the first is the observed receiver.
        let receivers = (1..<agents).filter { scope == .all || BenchScope.store(ofTerminal: $0) == BenchScope.writtenStore }
        guard receivers.first == 1 else { throw BenchError.setup("the observed receiver is not in the written store") }
        for index in 0..<(Self.warmupWrites + writes) {
            let key = UniqueID.make()
            let lead = try workload.lead(store: BenchScope.writtenStore, guide: "G1-0", index: index, at: systemWallClock())
            for agent in receivers { probes[agent].expect(key) }
            try passive.arm(after: hub.replica.latestSequence)
            let start = monotonicNanos()
            try replicas[0].write { tx in try tx.insert(into: workload.leads.name, primaryKey: key, lead) }
            let committed = monotonicNanos()
            liveAgents[0].localWriteCommitted()
            // Agent 1 is the observed receiver; every other agent's arrival counts for "all sessions".
            var arrivalTimes: [UInt64] = []
            for agent in receivers {
                guard let arrived = probes[agent].wait(for: replicas[agent], timeout: Self.waitLimit) else {
                    throw BenchError.timeout("write \(index) did not reach a receiving terminal in \(Self.waitLimit)")
                }
                arrivalTimes.append(arrived)
            }
            let fleet = try passive.waitSettled()
            if let failure = events.failure { throw BenchError.protocolFailure(failure) }
            if index == Self.warmupWrites - 1 { cpuAtStart = (processCPUNanoseconds(), fleet.cpu) }
            cpuAtEnd = (processCPUNanoseconds(), fleet.cpu)
            guard index >= Self.warmupWrites else { continue }
            commits.append(committed - start)
            arrivals.append((arrivalTimes.first ?? committed) - committed)
            fanouts.append(max(fleet.lastExpectedAt ?? 0, arrivalTimes.max() ?? 0) - committed)
            pulls.append(fleet.pulled + receivers.count)
        }
        let written = Int64(Self.warmupWrites + writes)
        for replica in receivers.map({ replicas[$0] }) {
            let received = try replica.read { try $0.fetchScalar("SELECT count(*) FROM leads")?.integerValue ?? 0 }
            guard received == written else {
                throw BenchError.verification("a receiving terminal holds \(received) leads, \(written) were written")
            }
        }

        let inScope = scope == .all ? terminals - 1 : (1..<terminals).filter { BenchScope.store(ofTerminal: $0) == BenchScope.writtenStore }.count
        reporter.header("storesync-bench fanout: \(sessions) terminals live on one hub, \(writes) writes one at a time", notes: [
            "shape: hub + \(agents) LiveSyncAgents (own replica and thread each; writer, observed receiver\(agents > 2 ? ", \(agents - 2) more" : "")) in this process; \(passive.count) passive live sessions (NOTIFY → PULL, batch decoded and dropped) in a child process",
            "scope \(scope.rawValue): \(scope == .store ? "ten terminals per store, each sees its store's rows; the writes are store S001's" : "every terminal sees every row"), so \(inScope) other terminals should get each write",
            "latency: from the writer's commit returning to a query on the receiver's replica finding the row",
            "every replica synchronous=\(durable ? "FULL" : "NORMAL") (the hub's merge and the receiver's apply commit on the path); fsync p50 \(fsync.map { formatNumber($0, decimals: 2) + " ms" } ?? "unknown"); load average \(loadAverage())",
        ])
        let arrival = LatencySummary(nanoseconds: arrivals)
        let fanout = LatencySummary(nanoseconds: fanouts)
        let counts = [("terminals", "\(sessions)"), ("writes", "\(writes)"), ("agents", "\(agents)"), ("scope", "\"\(scope.rawValue)\"")]
        let issueShape = sessions >= 1_000
        reporter.emit(Figure(scenario: "fanout_arrival_p50", value: arrival.p50, unit: "ms",
                             target: issueShape ? .atMost(Self.targetP50) : nil, details: counts))
        reporter.emit(Figure(scenario: "fanout_arrival_p99", value: arrival.p99, unit: "ms",
                             target: issueShape ? .atMost(Self.targetP99) : nil, details: counts))
        reporter.emit(Figure(scenario: "fanout_arrival_max", value: arrival.max, unit: "ms", target: nil, details: counts))
        reporter.emit(Figure(scenario: "fanout_all_in_scope_p50", value: fanout.p50, unit: "ms", target: nil,
                             details: counts + [("in_scope", "\(inScope)")]))
        reporter.emit(Figure(scenario: "fanout_all_in_scope_p99", value: fanout.p99, unit: "ms", target: nil,
                             details: counts + [("in_scope", "\(inScope)")]))
        // The passive sessions that pulled each write, and the receiving agents.
        reporter.emit(Figure(scenario: "sessions_pulling_per_write", value: Double(pulls.reduce(0, +)) / Double(max(1, pulls.count)),
                             unit: "sessions", target: nil, details: counts + [("in_scope", "\(inScope)")]))
        reporter.emit(Figure(scenario: "writer_local_commit_p50", value: LatencySummary(nanoseconds: commits).p50, unit: "ms",
                             target: nil, details: counts))
        reporter.emit(Figure(scenario: "hub_ping_round_trip_p50", value: idleRoundTrip.p50, unit: "ms", target: nil,
                             details: [("sessions", "1")]))
        // CPU per write: the hub's process (with the agents) and the passive sessions' child.
        let hubCPU = Double(cpuAtEnd.hub - cpuAtStart.hub) / Double(writes) / 1e6
        reporter.emit(Figure(scenario: "hub_process_cpu_per_write", value: hubCPU, unit: "ms", target: nil,
                             details: counts + [("us_per_session", formatNumber(hubCPU * 1_000 / Double(max(1, sessions)), decimals: 3))]))
        if passive.count > 0 {
            reporter.emit(Figure(scenario: "passive_sessions_cpu_per_write", value: Double(cpuAtEnd.clients - cpuAtStart.clients) / Double(writes) / 1e6,
                                 unit: "ms", target: nil, details: counts))
        }
    }

    /// PING → PONG round trips of one session to the otherwise idle hub: what one request and
    /// its answer cost through Net and Dispatch on loopback (a write crosses two such pairs:
    /// PUSH → NOTIFY, then PULL → PULL_BATCH).
    private func pingRoundTrip(_ address: SocketAddress) throws -> LatencySummary {
        let client = try BlockingFramedClient(connectingTo: address, timeout: .seconds(5), logger: Logger.discarding)
        defer { client.close(timeout: .seconds(1)) }
        try client.send(.hello(Hello(protocolVersions: WireFormat.supportedProtocolVersions, replica: ReplicaID.random(),
                                     role: .terminal, scope: "store:S000", clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0),
                                     credentials: [])))
        guard case .helloAck = try client.receive(timeout: .seconds(5)) else {
            throw BenchError.protocolFailure("expected HELLO_ACK")
        }
        var samples: [UInt64] = []
        for nonce in 1...200 {
            let start = monotonicNanos()
            try client.send(.ping(nonce: UInt64(nonce)))
            guard case .pong(let answer) = try client.receive(timeout: .seconds(5)), answer == UInt64(nonce) else {
                throw BenchError.protocolFailure("expected PONG \(nonce)")
            }
            samples.append(monotonicNanos() - start)
        }
        return LatencySummary(nanoseconds: samples)
    }

    /// Polls `condition` every 10 ms until it holds, for at most a minute (setup only).
    private func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
        let deadline = monotonicNanos() + 60_000_000_000
        while monotonicNanos() < deadline {
            if try condition() { return }
            usleep(10_000)
        }
        throw BenchError.timeout(what)
    }
}
