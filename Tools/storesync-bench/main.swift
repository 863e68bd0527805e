import Foundation
import Net

/// storesync-bench: side-by-side measurements of the engine against plain SQLite (and, for
/// the protocol, of the codec). Run in release mode: `swift run -c release storesync-bench local`.
let usage = """
    usage: storesync-bench <benchmark> [--json] [options]

    benchmarks:
      local     engine-logged writes and merges against raw SQLite on the same rows
                options: --rows N (rows per insert scenario, default 100000)
                         --rounds N (best of N, default 3)
                         --synchronous normal|full (both sides; default normal)
      wire      codec throughput and per-frame / per-cell overhead of a 10,000-cell batch
      sync      terminals push their day's retail rows concurrently to one hub on loopback:
                total time and merge rate, beside the local Replica.apply rate of the same batches
                options: --terminals N (default 100) --changes N (cells per terminal, default 10000)
                         --client push|sync (PUSHes only, or `storesync sync`'s push then pull;
                         default push)
                         --synchronous normal|full (hub and baselines; default full, as the CLI)
                         --rounds N (network runs per hub, the best counts; default 1)
                         --rules (a workload the central rules work on: stock signals crossing
                         thresholds, stage moves, duplicate phones; pushed to a hub without and
                         to a hub with the retail rules, alternately; prints with ÷ without)
      relay     terminals' cells reach HQ through a regional hub (relaying as `storesync hub
                --upstream`), against the same cells pushed straight to HQ, in the same run:
                time until HQ holds every row, both paths, and their ratio
                options: --terminals N (default 100) --changes N (cells per terminal, default 10000)
                         --rounds N (runs per path, alternating; the best counts; default 1)
                         --rules (the retail rules on every hub, with the rules workload)
                         --deadline-s N (longest wait for HQ to hold every row; default 300)
                         --synchronous normal|full (every hub; default full, as the CLI)
      fanout    with N terminals connected live, latency from a committed write on one terminal
                to the row being in another terminal's replica (p50, p99, max)
                options: --terminals N (default 1000) --writes N (default 200)
                         --agents N (full LiveSyncAgents with their own replica and thread,
                         writer and observed receiver included; default 2; the other
                         terminals are passive live sessions in a child process: NOTIFY,
                         PULL, discard)
                         --scope store|all (ten terminals per store, each sees its store, the
                         retail way; or every terminal sees every write; default store)
                         --synchronous normal|full (every replica; default full)
      conns     idle sessions (TCP + HELLO/HELLO_ACK) one `storesync hub` child process holds,
                and its resident memory per session (VmRSS from /proc/<pid>/status)
                options: --connections N (default 10000)
                         --hub-binary PATH (default: storesync next to this executable)

    --json      one JSON object per line per scenario instead of a table
    """

enum ExitCode: Int32 {
    case success = 0
    case failure = 1
    case usage = 64
}

func fail(_ message: String, _ code: ExitCode) -> Never {
    FileHandle.standardError.write(Data("storesync-bench: \(message)\n".utf8))
    exit(code.rawValue)
}

/// Parsed command line: the benchmark, `--json`, and `--name value` options.
struct CommandLineOptions {
    var benchmark: String
    var json = false
    var values: [String: String] = [:]
    /// Flags without a value given on the command line and not yet taken by `flag(_:)`.
    var flags: Set<String> = []
    static let knownFlags: Set<String> = ["rules"]

    init(_ arguments: [String]) {
        var arguments = arguments
        guard let benchmark = arguments.first else { fail("missing benchmark\n\(usage)", .usage) }
        arguments.removeFirst()
        self.benchmark = benchmark
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--json" {
                json = true
            } else if argument.hasPrefix("--"), Self.knownFlags.contains(String(argument.dropFirst(2))) {
                flags.insert(String(argument.dropFirst(2)))
            } else if argument == "--help" || argument == "-h" {
                print(usage)
                exit(ExitCode.success.rawValue)
            } else if argument.hasPrefix("--"), index + 1 < arguments.count {
                values[String(argument.dropFirst(2))] = arguments[index + 1]
                index += 1
            } else {
                fail("unexpected argument \(argument)\n\(usage)", .usage)
            }
            index += 1
        }
    }

    mutating func int(_ name: String, default value: Int) -> Int {
        guard let text = values.removeValue(forKey: name) else { return value }
        guard let number = Int(text), number > 0 else { fail("--\(name) needs a positive number, got \(text)", .usage) }
        return number
    }

    mutating func string(_ name: String, default value: String, allowed: [String]) -> String {
        let text = values.removeValue(forKey: name) ?? value
        guard allowed.contains(text) else { fail("--\(name) is one of \(allowed.joined(separator: ", "))", .usage) }
        return text
    }

    mutating func flag(_ name: String) -> Bool {
        flags.remove(name) != nil
    }

    func rejectUnknown() {
        if let name = (Array(values.keys) + Array(flags)).sorted().first { fail("unknown option --\(name)\n\(usage)", .usage) }
    }
}

func runBenchmarks() {
    // A child process that exits must not kill us through a write to its pipe.
    signal(SIGPIPE, SIG_IGN)
    var options = CommandLineOptions(Array(CommandLine.arguments.dropFirst()))
    do {
        switch options.benchmark {
        case "local":
            let rows = options.int("rows", default: 100_000)
            let rounds = options.int("rounds", default: 3)
            let synchronous = options.string("synchronous", default: "normal", allowed: ["normal", "full"])
            options.rejectUnknown()
            try LocalBenchmark(rows: rows, rounds: rounds, durable: synchronous == "full", reporter: Reporter(json: options.json)).run()
        case "wire":
            options.rejectUnknown()
            try WireBenchmark.run(json: options.json)
        case "sync":
            let terminals = options.int("terminals", default: 100)
            let changes = options.int("changes", default: 10_000)
            let client = options.string("client", default: "push", allowed: ["push", "sync"])
            let synchronous = options.string("synchronous", default: "full", allowed: ["normal", "full"])
            let rounds = options.int("rounds", default: 1)
            let rules = options.flag("rules")
            options.rejectUnknown()
            try SyncBenchmark(terminals: terminals, changes: changes, client: SyncBenchmark.Client(rawValue: client) ?? .push,
                              durable: synchronous == "full", rules: rules, rounds: rounds, reporter: FigureReporter(json: options.json)).run()
        case "relay":
            let terminals = options.int("terminals", default: 100)
            let changes = options.int("changes", default: 10_000)
            let rounds = options.int("rounds", default: 1)
            let deadline = options.int("deadline-s", default: 300)
            let synchronous = options.string("synchronous", default: "full", allowed: ["normal", "full"])
            let rules = options.flag("rules")
            options.rejectUnknown()
            try RelayBenchmark(terminals: terminals, changes: changes, durable: synchronous == "full", rules: rules ? .retail : .none,
                               rounds: rounds, deadline: .seconds(deadline), reporter: FigureReporter(json: options.json)).run()
        case "fanout":
            let terminals = options.int("terminals", default: 1_000)
            let writes = options.int("writes", default: 200)
            let agents = options.int("agents", default: 2)
            let scope = options.string("scope", default: "store", allowed: ["store", "all"])
            let synchronous = options.string("synchronous", default: "full", allowed: ["normal", "full"])
            options.rejectUnknown()
            try FanoutBenchmark(terminals: terminals, writes: writes, agents: agents, scope: BenchScope(rawValue: scope) ?? .store,
                                durable: synchronous == "full", rules: .none, reporter: FigureReporter(json: options.json)).run()
        case "conns":
            let connections = options.int("connections", default: 10_000)
            let hubBinary = options.values.removeValue(forKey: "hub-binary")
            options.rejectUnknown()
            try ConnsBenchmark(connections: connections, hubBinary: hubBinary, reporter: FigureReporter(json: options.json)).run()
        case "fanout-listeners":
            // The child process of `fanout`; not for people to run.
            let hub = options.values.removeValue(forKey: "hub") ?? ""
            let count = options.int("count", default: 1)
            let firstTerminal = options.int("first-terminal", default: 2)
            let scope = options.string("scope", default: "store", allowed: ["store", "all"])
            options.rejectUnknown()
            guard let address = try? SocketAddress.parse(hub) else { fail("--hub HOST:PORT is required", .usage) }
            FanoutListenerProcess.run(hub: address, count: count, firstTerminal: firstTerminal, scope: BenchScope(rawValue: scope) ?? .store)
        case "help":
            print(usage)
        default:
            fail("unknown benchmark \(options.benchmark)\n\(usage)", .usage)
        }
    } catch {
        fail("\(error)", .failure)
    }
}

runBenchmarks()
