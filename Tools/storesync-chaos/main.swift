import Foundation
import Glibc

/// storesync-chaos: fault-injection runs of real `storesync` processes (see RELIABILITY.md).
let usage = """
    usage: storesync-chaos --seeds A..B [--ops N] [options]     bounded: one schedule per seed, one at a time
           storesync-chaos --minutes N [--seed S] [options]     long: one schedule of N minutes, hubs' RSS and fds watched
    options:
      --storesync PATH   the storesync binary (default: the one beside this executable)
      --dir DIR          where replicas and logs go (default: a new temporary directory)
      --ops N            workload steps per bounded schedule (default 220)
      --faults N         faults per schedule, about (default 15)
      --quiesce-s N      how long the heal may take (default 240)
      --restore-faults   restore hubs from an online `storesync backup` now and then (when the binary has `backup`)
      --kill-hubs        long mode: SIGKILL hubs too (off by default, so each hub's resources are one process's)
      --keep             keep the replicas of passing schedules (failing ones are always kept)
      --verbose          print the history as it happens
      --tamper KIND      damage the files before the checks (drop-row, change-field, duplicate-sale): the checker's own test
    Exit codes: 0 every schedule passed, 1 a check failed (seed, invariant and history printed), 64 usage.
    """

struct UsageError: Error, CustomStringConvertible {
    var description: String
}

struct Command {
    var seeds: ClosedRange<UInt64> = 1...1
    var minutes: Double?
    var operations = 220
    var faults = 15
    var quiesce: Double = 240
    var binary: String
    var root: String?
    var keep = false
    var verbose = false
    var killHubs = false
    var tamper: Tamper?
    var restoreFaults = false

    init(_ arguments: [String]) throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "storesync-chaos").resolvingSymlinksInPath()
        binary = executable.deletingLastPathComponent().appendingPathComponent("storesync").path
        var index = 0
        var sawSeeds = false
        func value() throws -> String {
            index += 1
            guard index < arguments.count else { throw UsageError(description: "\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--seeds":
                let text = try value()
                let parts = text.components(separatedBy: "..")
                guard parts.count == 2, let low = UInt64(parts[0]), let high = UInt64(parts[1]), low <= high else {
                    throw UsageError(description: "--seeds is A..B with A <= B, got \(text)")
                }
                seeds = low...high
                sawSeeds = true
            case "--seed":
                let text = try value()
                guard let seed = UInt64(text) else { throw UsageError(description: "--seed is a whole number, got \(text)") }
                seeds = seed...seed
                sawSeeds = true
            case "--minutes":
                let text = try value()
                guard let minutes = Double(text), minutes > 0 else { throw UsageError(description: "--minutes is a positive number, got \(text)") }
                self.minutes = minutes
            case "--ops":
                let text = try value()
                guard let count = Int(text), count > 0 else { throw UsageError(description: "--ops is a positive whole number, got \(text)") }
                operations = count
            case "--faults":
                let text = try value()
                guard let count = Int(text), count >= 0 else { throw UsageError(description: "--faults is a whole number, got \(text)") }
                faults = count
            case "--quiesce-s":
                let text = try value()
                guard let seconds = Double(text), seconds > 0 else { throw UsageError(description: "--quiesce-s is a positive number, got \(text)") }
                quiesce = seconds
            case "--storesync": binary = try value()
            case "--dir": root = try value()
            case "--keep": keep = true
            case "--verbose": verbose = true
            case "--kill-hubs": killHubs = true
            case "--restore-faults": restoreFaults = true
            case "--tamper":
                let text = try value()
                guard let kind = Tamper(rawValue: text) else {
                    throw UsageError(description: "--tamper is one of \(Tamper.allCases.map(\.rawValue).joined(separator: ", ")), got \(text)")
                }
                tamper = kind
            case "--help", "-h":
                print(usage)
                exit(0)
            default:
                throw UsageError(description: "unknown option \(arguments[index])")
            }
            index += 1
        }
        guard sawSeeds || minutes != nil else { throw UsageError(description: "give --seeds A..B (bounded) or --minutes N (long)") }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw UsageError(description: "no storesync executable at \(binary); build it (`swift build`) or pass --storesync PATH")
        }
    }
}

func report(_ summary: ScheduleSummary, _ history: History) {
    let verdict = summary.passed ? "ok" : "FAILED"
    print(String(format: "seed %llu: %@  %d ops, %d acknowledged writes, %d faults, %d background syncs, %.1f s",
                 summary.seed, verdict, summary.operations, summary.acknowledged, summary.faults, summary.syncs, summary.seconds))
    for line in summary.resources { print("  resources \(line)") }
    guard !summary.passed else { return }
    print("  replay: storesync-chaos --seeds \(summary.seed)..\(summary.seed) --verbose   (replicas and logs kept in \(summary.directory))")
    for failure in summary.failures.prefix(40) { print("  FAIL \(failure)") }
    if summary.failures.count > 40 { print("  … \(summary.failures.count - 40) more") }
    // The history that matters: every fault and heal, and the operations on the rows named.
    var words = Set<String>()
    for failure in summary.failures {
        for word in failure.split(whereSeparator: { " ();,=:".contains($0) }) where word.count >= 20 { words.insert(String(word)) }
    }
    print("  history (faults, heals, and the operations on the rows above; whole history in \(summary.directory)/history.txt):")
    for line in history.relevant(to: words) { print("    \(line)") }
}

func runMain() -> Int32 {
    let command: Command
    do {
        command = try Command(Array(CommandLine.arguments.dropFirst()))
    } catch {
        FileHandle.standardError.write(Data("storesync-chaos: \(error)\n\(usage)\n".utf8))
        return 64
    }
    signal(SIGPIPE, SIG_IGN)
    let interrupts = Child.killChildrenOnInterrupt()
    defer { for source in interrupts { source.cancel() } }
    let root = command.root ?? (NSTemporaryDirectory() + "storesync-chaos-\(getpid())")
    let capabilities = Capabilities.probe(binary: command.binary, scratch: NSTemporaryDirectory() + "storesync-chaos-probe-\(getpid())")
    print("storesync under test: \(command.binary) (\(capabilities))")
    if command.restoreFaults && !capabilities.backup { print("restore faults skipped: this storesync has no `backup` command") }
    var failed = 0
    var totals = (schedules: 0, operations: 0, acknowledged: 0, faults: 0, syncs: 0)
    let seeds: [UInt64] = command.minutes != nil ? [command.seeds.lowerBound] : Array(command.seeds)
    for seed in seeds {
        var options = ScheduleOptions(seed: seed, binary: command.binary, root: root)
        options.operations = command.operations
        options.minutes = command.minutes
        options.keep = command.keep
        options.verbose = command.verbose
        options.quiesceSeconds = command.quiesce
        options.faultsPerSchedule = command.faults
        options.tamper = command.tamper
        options.capabilities = capabilities
        options.restoreFaults = command.restoreFaults
        options.killHubs = command.minutes == nil || command.killHubs
        if command.minutes != nil {
            // Spread the faults over the run: about one per 20 operations.
            options.operations = max(options.operations, 300)
        }
        let schedule: Schedule
        do {
            schedule = try Schedule(options: options)
        } catch {
            print("seed \(seed): cannot prepare \(root): \(error)")
            return 1
        }
        let summary = schedule.run()
        report(summary, schedule.history)
        let proxy = schedule.proxyTotals
        print("  proxies: \(proxy.connections) connections, \(proxy.cuts) cut at a byte offset, \(proxy.stalls) stalled, \(proxy.refused) refused, \(proxy.resetsByHarness) reset-all")
        fflush(nil)
        totals.schedules += 1
        totals.operations += summary.operations
        totals.acknowledged += summary.acknowledged
        totals.faults += summary.faults
        totals.syncs += summary.syncs
        if summary.passed {
            if !command.keep { try? FileManager.default.removeItem(atPath: summary.directory) }
        } else {
            failed += 1
        }
    }
    print("\(totals.schedules) schedules, \(failed) failed; \(totals.operations) operations, \(totals.acknowledged) acknowledged writes, \(totals.faults) faults, \(totals.syncs) background syncs")
    if failed == 0 && command.root == nil && !command.keep { try? FileManager.default.removeItem(atPath: root) }
    return failed == 0 ? 0 : 1
}

exit(runMain())
