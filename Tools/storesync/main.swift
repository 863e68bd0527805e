import Foundation

/// storesync: the command line of StoreSync.
let usage = """
    usage: storesync <command> [options]

    try it:
      demo     [--dir DIR] [--seed N] [--days N] [--log-level L]
               HQ, two regional hubs and twelve terminals on loopback, simulated guides, then HQ's views

    replicas:
      init     --db PATH (--terminal --store STORE_ID | --hub --region REGION_ID | --hq)
      status   --db PATH [--format text|json]
      backup   --db PATH --to NEW_PATH [--format text|json]
               an online, consistent copy (safe while hub or sync --live runs); the way to back up
      reidentify --db PATH [--format text|json]
               a new replica id for a clone or a restored copy a hub refused (REPLICA_CONFLICT)

    syncing:
      sync     --db PATH --hub HOST:PORT [--live] [--format text|json] [--timeout-s N] [--log-level L]
      hub      --db PATH --listen HOST:PORT [--max-connections N] [--idle-timeout-s N]
               [--handshake-timeout-s N] [--upstream HOST:PORT] [--log-level L] [--format text|json]

    guides (on a store's terminal replica; the store is the one given to `init --terminal --store`):
      lead add       --db PATH --name NAME --phone PHONE [--source S] [--score 0-100] [--owner GUIDE]
      lead update    --db PATH --id ID [--name NAME] [--phone PHONE] [--source S] [--score N] [--owner GUIDE]
      lead stage     --db PATH --id ID --to reached|needs-confirmed|demo|negotiation|won|lost
      lead list      --db PATH [--grade A|B|C] [--overdue]
      visit log      --db PATH --guide G [--lead ID] [--customer NAME] [--duration-min N] [--products SKU,...]
                     [--outcome TEXT]
      stock sale|receive|adjust|count --db PATH --sku SKU --qty N [--guide G]
      stock show     --db PATH [--sku SKU]
      sale record    --db PATH --guide G --sku SKU --qty N --amount AMOUNT [--lead ID]
      promotions     --db PATH
      (each takes [--format text|json])

    operators (on a hub or HQ replica):
      store add      --db PATH --id STORE_ID --region REGION_ID --lat DEGREES --lon DEGREES [--name NAME]
      threshold set  --db PATH --store STORE_ID --sku SKU --min N

    reports:
      report   (--db PATH | --hub HOST:PORT) --view sales|funnel|sla|stock [--by region|store|guide|day]
               [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--format table|csv|json] [--timeout-s N]

    Exit codes: 0 success, 64 usage error, 75 worth retrying (hub unreachable, busy or failing,
    timeout, disk full, database busy), 1 any other failure. With --format json a failure prints
    one object {"error", "message", "retryable"} on standard output. Logs go to standard error.
    """

/// Each command: the options that take no value, and what runs it.
struct Command: Sendable {
    var flags: Set<String>
    var run: @Sendable (Arguments) throws -> Void
}

let commands: [String: Command] = [
    "init": Command(flags: ["terminal", "hub", "hq"], run: runInit),
    "status": Command(flags: [], run: runStatus),
    "backup": Command(flags: [], run: runBackup),
    "reidentify": Command(flags: [], run: runReidentify),
    "sync": Command(flags: ["live"], run: runSync),
    "hub": Command(flags: [], run: runHub),
    "report": Command(flags: [], run: runReport),
    "demo": Command(flags: [], run: runDemo),
    "lead add": Command(flags: [], run: runLeadAdd),
    "lead update": Command(flags: [], run: runLeadUpdate),
    "lead stage": Command(flags: [], run: runLeadStage),
    "lead list": Command(flags: ["overdue"], run: runLeadList),
    "visit log": Command(flags: [], run: runVisitLog),
    "stock sale": Command(flags: [], run: stockSignalCommand(.sale)),
    "stock receive": Command(flags: [], run: stockSignalCommand(.receipt)),
    "stock adjust": Command(flags: [], run: stockSignalCommand(.adjustment)),
    "stock count": Command(flags: [], run: stockSignalCommand(.stocktake)),
    "stock show": Command(flags: [], run: runStockShow),
    "sale record": Command(flags: [], run: runSaleRecord),
    "promotions": Command(flags: [], run: runPromotions),
    "store add": Command(flags: [], run: runStoreAdd),
    "threshold set": Command(flags: [], run: runThresholdSet),
]

/// The command an argument list names: a word (`sync`) or a word and a subcommand (`lead add`),
/// with the arguments after it.
func resolve(_ arguments: [String], in commands: [String: Command]) throws -> (name: String, command: Command, rest: ArraySlice<String>) {
    let word = arguments[1]
    if arguments.count >= 3, let command = commands["\(word) \(arguments[2])"] {
        return ("\(word) \(arguments[2])", command, arguments.dropFirst(3))
    }
    if let command = commands[word] { return (word, command, arguments.dropFirst(2)) }
    let subcommands = commands.keys.filter { $0.hasPrefix(word + " ") }.map { String($0.dropFirst(word.count + 1)) }.sorted()
    if !subcommands.isEmpty {
        let given = arguments.count >= 3 ? "unknown \(word) command \(arguments[2])" : "missing \(word) command"
        throw UsageError(message: "\(given); one of \(subcommands.joined(separator: ", "))")
    }
    throw UsageError(message: "unknown command \(word)")
}

func main(commands: [String: Command]) -> Int32 {
    let arguments = CommandLine.arguments
    let json = wantsJSON(arguments)
    /// Reports a failure: a message on standard error (with the usage for a usage error) and,
    /// with `--format json`, exactly one JSON object on standard output.
    func fail(_ failure: Failure, command: String?) -> Int32 {
        let prefix = command.map { "\($0): " } ?? ""
        printError(prefix + failure.message + (failure.kind == .usage ? "\n\(usage)" : ""))
        if json {
            print(failure.json)
            fflush(nil)
        }
        return failure.exitCode.rawValue
    }
    guard arguments.count >= 2 else {
        return fail(Failure(kind: .usage, message: "missing command"), command: nil)
    }
    var name = arguments[1]
    if ["help", "--help", "-h"].contains(name) {
        print(usage)
        return ExitCode.success.rawValue
    }
    let command: Command
    let rest: ArraySlice<String>
    do {
        (name, command, rest) = try resolve(arguments, in: commands)
    } catch {
        return fail(Failure(error), command: nil)
    }
    do {
        let parsed = try Arguments(rest, flagNames: command.flags.union(["help"]))
        if parsed.flag("help") {
            print(usage)
            return ExitCode.success.rawValue
        }
        try command.run(parsed)
        return ExitCode.success.rawValue
    } catch {
        return fail(Failure(error), command: name)
    }
}

exit(main(commands: commands))
