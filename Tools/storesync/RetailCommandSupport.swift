import Foundation
import Retail
import SyncEngine

/// What the retail commands share: opening the right kind of replica, the output format, and
/// turning the domain's refusals into the CLI's exit codes.

/// `--format text|json` (text by default).
enum OutputFormat: String {
    case text, json

    init(_ arguments: Arguments) throws {
        let name = arguments.optional("format") ?? "text"
        guard let format = OutputFormat(rawValue: name) else { throw UsageError(message: "--format is text or json") }
        self = format
    }
}

/// A terminal replica and the store it serves (recorded by `storesync init --terminal --store`).
func openTerminal(_ arguments: Arguments) throws -> (replica: Replica, store: String) {
    let path = try arguments.required("db")
    let replica = try openReplica(path)
    let settings = try NodeSettings.read(replica)
    guard settings.kind == .terminal, case .store(let store)? = NodeScope(settings.scope) else {
        throw CommandError("\(path) is a \(settings.kind.rawValue) replica for \(settings.scope); guide commands run on a store's terminal replica (`storesync init --terminal --store S`)")
    }
    try ensureLeadViews(replica)
    return (replica, store)
}

/// A hub or HQ replica and what it serves: operators keep reference data there.
func openOperatorReplica(_ arguments: Arguments) throws -> (replica: Replica, scope: NodeScope) {
    let path = try arguments.required("db")
    let replica = try openReplica(path)
    let settings = try NodeSettings.read(replica)
    guard settings.kind != .terminal, let scope = NodeScope(settings.scope) else {
        throw CommandError("\(path) is a \(settings.kind.rawValue) replica for \(settings.scope); reference data is kept on a hub or HQ replica")
    }
    try ensureLeadViews(replica)
    return (replica, scope)
}

/// Creates the lead views of `LeadViews` if the replica lacks them (they are not replicated).
func ensureLeadViews(_ replica: Replica) throws {
    if try replica.read({ try LeadViews.arePresent(in: $0) }) { return }
    try replica.write { tx in try LeadViews.install(in: tx.database) }
}

/// Runs a domain operation: a malformed value, or one the application schema refuses (too long,
/// out of range: the same check hubs make on pushed rows), is a usage error (exit 64: the value
/// came from an option); a refusal (unknown lead, a stage the funnel does not allow) a failure
/// (exit 1); messages carry no personal data.
func retail<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as RetailError {
        switch error {
        case .invalidValue, .schemaViolation: throw UsageError(message: error.description)
        case .unknownLead, .stageChange, .wrongNode: throw CommandError(error.description, kind: .rejected)
        }
    }
}

/// Runs a create command once per `--request-id` (see `RequestLedger`); without a key, just runs it.
func createOnce(_ arguments: Arguments, command: String, replica: Replica, tables: [TableSchema],
                _ create: () throws -> [String: String]) throws -> [String: String] {
    guard let ledger = try RequestLedger(arguments, command: command, replica: replica) else { return try create() }
    return try ledger.once(tables: tables, create)
}

/// The wall-clock time commands stamp (the replica's clock, corrected if it adopted a hub's time).
func now(_ replica: Replica) -> Int64 { Int64(bitPattern: replica.clock.wallMilliseconds()) }

/// Parses a whole number option; nil when absent.
func wholeNumber(_ arguments: Arguments, _ name: String) throws -> Int64? {
    guard let text = arguments.optional(name) else { return nil }
    guard let value = Int64(text) else { throw UsageError(message: "--\(name) must be a whole number, got \(text)") }
    return value
}

/// Prints one JSON value (sorted keys, one line).
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

/// A time for people: ISO 8601 UTC, or "-".
func timeText(_ milliseconds: Int64?) -> String {
    milliseconds.map { formatTime(milliseconds: $0) } ?? "-"
}
