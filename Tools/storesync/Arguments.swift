import Foundation

/// Exit codes: a small typed set, as scripts see them.
enum ExitCode: Int32 {
    case success = 0
    case failure = 1
    /// Worth running again unchanged later: the hub unreachable, busy, failing inside or slow;
    /// the disk full; the database busy (sysexits' EX_TEMPFAIL).
    case retryable = 75
    case usage = 64
}

/// A command-line mistake: printed with the command's usage, exit code 64.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// What went wrong, as a script reads it from `--format json`'s `error` field.
enum FailureKind: String, Sendable {
    case usage
    /// The hub could not be reached (refused, no route, DNS).
    case unreachable
    /// The hub did not answer in time.
    case timeout
    /// The link dropped mid-session.
    case disconnected
    /// SERVER_BUSY.
    case hubBusy = "hub_busy"
    /// INTERNAL from the hub.
    case hubInternal = "hub_internal"
    /// CLOCK_SKEW even after adopting the hub's clock once.
    case clockSkew = "clock_skew"
    case diskFull = "disk_full"
    case databaseBusy = "database_busy"
    case permissionDenied = "permission_denied"
    /// No replica (or no such row) where the command looked.
    case notFound = "not_found"
    /// Another process holds the replica file (`hub`, `sync --live`).
    case inUse = "in_use"
    /// The hub refused for a reason a person must fix (scope, credentials, schema).
    case refused
    /// Another database holds this replica id (a clone or a restored backup), detected by the
    /// hub (REPLICA_CONFLICT) or by the client: run `storesync reidentify`.
    case replicaConflict = "replica_conflict"
    /// A hub refused a view's parameter (BAD_VIEW_PARAMETER).
    case badViewParameter = "bad_view_parameter"
    /// The command's input was refused by the domain (unknown lead, a forbidden stage move).
    case rejected
    case failed

    /// Whether running the same command again later may succeed as it is.
    var isRetryable: Bool {
        switch self {
        case .unreachable, .timeout, .disconnected, .hubBusy, .hubInternal, .clockSkew, .diskFull, .databaseBusy: return true
        default: return false
        }
    }
}

/// A failure the user can act on: printed as is; exit code 75 when it is retryable, else 1.
struct CommandError: Error, CustomStringConvertible {
    var message: String
    var kind: FailureKind
    init(_ message: String, kind: FailureKind = .failed) {
        self.message = message
        self.kind = kind
    }
    var description: String { message }
}

/// The options of one command: `--name value` pairs and bare `--flag`s, parsed strictly.
struct Arguments {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    private(set) var positionals: [String] = []

    /// `flagNames` lists the options that take no value; every other `--option` needs one.
    init(_ arguments: ArraySlice<String>, flagNames: Set<String>) throws {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument.hasPrefix("--") {
                var name = String(argument.dropFirst(2))
                var inlineValue: String?
                if let equals = name.firstIndex(of: "=") {
                    inlineValue = String(name[name.index(after: equals)...])
                    name = String(name[..<equals])
                }
                if flagNames.contains(name) {
                    guard inlineValue == nil else { throw UsageError(message: "--\(name) takes no value") }
                    flags.insert(name)
                } else if let inlineValue {
                    values[name] = inlineValue
                } else {
                    let next = arguments.index(after: index)
                    guard next < arguments.endIndex, !arguments[next].hasPrefix("--") else {
                        throw UsageError(message: "--\(name) needs a value")
                    }
                    guard values[name] == nil else { throw UsageError(message: "--\(name) given twice") }
                    values[name] = arguments[next]
                    index = next
                }
            } else {
                positionals.append(argument)
            }
            index = arguments.index(after: index)
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// Every `--name value` given.
    var options: [String: String] { values }

    func optional(_ name: String) -> String? { values[name] }

    func required(_ name: String) throws -> String {
        guard let value = values[name], !value.isEmpty else { throw UsageError(message: "missing --\(name)") }
        return value
    }

    func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(message: "--\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound), got \(text)")
        }
        return value
    }

    /// Refuses options the command does not know, so a typo never passes silently.
    func rejectUnknown(allowed: Set<String>) throws {
        for name in values.keys.sorted() where !allowed.contains(name) {
            throw UsageError(message: "unknown option --\(name)")
        }
        for name in flags.sorted() where !allowed.contains(name) {
            throw UsageError(message: "unknown option --\(name)")
        }
        if let extra = positionals.first {
            throw UsageError(message: "unexpected argument \(extra)")
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("storesync: \(message)\n".utf8))
}
