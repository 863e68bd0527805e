import Foundation

/// storesync: the command line of StoreSync.
let usage = """
    usage: storesync <command> [options]

    replicas:
      init     --db PATH (--terminal --store STORE_ID | --hub --region REGION_ID | --hq)
      status   --db PATH [--format text|json]

    syncing:
      sync     --db PATH --hub HOST:PORT [--live] [--format text|json] [--timeout-s N] [--log-level L]
      hub      --db PATH --listen HOST:PORT [--max-connections N] [--idle-timeout-s N]
               [--handshake-timeout-s N] [--upstream HOST:PORT] [--log-level L]

    reports:
      report   (--db PATH | --hub HOST:PORT) --view sales|funnel|sla [--by region|store|guide|day]
               [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--format table|csv|json] [--timeout-s N]

    Exit codes: 0 success, 1 failure, 64 usage error. Logs go to standard error.
    """

/// Each command: the options that take no value, and what runs it.
struct Command: Sendable {
    var flags: Set<String>
    var run: @Sendable (Arguments) throws -> Void
}

let commands: [String: Command] = [
    "init": Command(flags: ["terminal", "hub", "hq"], run: runInit),
    "status": Command(flags: [], run: runStatus),
    "sync": Command(flags: ["live"], run: runSync),
    "hub": Command(flags: [], run: runHub),
    "report": Command(flags: [], run: runReport),
]

func main(commands: [String: Command]) -> Int32 {
    let arguments = CommandLine.arguments
    guard arguments.count >= 2 else {
        printError("missing command\n\(usage)")
        return ExitCode.usage.rawValue
    }
    let name = arguments[1]
    if ["help", "--help", "-h"].contains(name) {
        print(usage)
        return ExitCode.success.rawValue
    }
    guard let command = commands[name] else {
        printError("unknown command \(name)\n\(usage)")
        return ExitCode.usage.rawValue
    }
    do {
        let parsed = try Arguments(arguments.dropFirst(2), flagNames: command.flags.union(["help"]))
        if parsed.flag("help") {
            print(usage)
            return ExitCode.success.rawValue
        }
        try command.run(parsed)
        return ExitCode.success.rawValue
    } catch let error as UsageError {
        printError("\(name): \(error)\n\(usage)")
        return ExitCode.usage.rawValue
    } catch {
        printError("\(name): \(error)")
        return ExitCode.failure.rawValue
    }
}

exit(main(commands: commands))
