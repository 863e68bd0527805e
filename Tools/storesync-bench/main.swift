import Foundation

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

    func rejectUnknown() {
        if let name = values.keys.sorted().first { fail("unknown option --\(name)\n\(usage)", .usage) }
    }
}

func runBenchmarks() {
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
