import Foundation
import SyncEngine
import Terminal
import Wire

/// How a failure reaches a script: its kind (`--format json`'s `error`), whether it is worth
/// retrying (exit code 75) and its message, which never carries personal data. Local storage
/// failures are classified by the engine (`SyncError.category(of:)`), in one place.
struct Failure {
    var kind: FailureKind
    var message: String

    init(_ error: any Error) {
        switch error {
        case let error as UsageError:
            self.init(kind: .usage, message: error.message)
        case let error as CommandError:
            self.init(kind: error.kind, message: error.message)
        case let failure as SyncFailure:
            self.init(kind: Failure.kind(of: failure), message: failure.description)
        default:
            self.init(kind: SyncError.category(of: error).map(FailureKind.init) ?? .failed, message: "\(error)")
        }
    }

    init(kind: FailureKind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// The kind of a sync session's failure.
    static func kind(of failure: SyncFailure) -> FailureKind {
        switch failure.kind {
        case .connect: return .unreachable
        case .timeout: return .timeout
        case .disconnected: return .disconnected
        case .refused:
            if failure.code == .serverBusy { return .hubBusy }
            if failure.code == .internal { return .hubInternal }
            if failure.code == .clockSkew { return .clockSkew }
            if failure.code == .replicaConflict { return .replicaConflict }
            return .refused
        case .protocolViolation: return .failed
        case .replicaConflict: return .replicaConflict
        case .local:
            switch failure.localCause {
            case .diskFull?: return .diskFull
            case .databaseBusy?: return .databaseBusy
            case .permissionDenied?: return .permissionDenied
            case nil: return .failed
            }
        }
    }

    var exitCode: ExitCode {
        switch kind {
        // A view parameter the hub refused came from the command line: fix it there.
        case .usage, .badViewParameter: return .usage
        default: return kind.isRetryable ? .retryable : .failure
        }
    }

    /// `{"error": kind, "message": …, "retryable": …}` on one line.
    var json: String {
        struct Body: Encodable {
            var error: String
            var message: String
            var retryable: Bool
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Body(error: kind.rawValue, message: message, retryable: kind.isRetryable)
        return (try? encoder.encode(body)).map { String(decoding: $0, as: UTF8.self) }
            ?? "{\"error\":\"\(kind.rawValue)\",\"message\":\"\",\"retryable\":\(kind.isRetryable)}"
    }
}

/// Whether the raw arguments ask for JSON output (`--format json` or `--format=json`), read
/// before parsing so that a usage error is reported in JSON too.
func wantsJSON(_ arguments: [String]) -> Bool {
    for (index, argument) in arguments.enumerated() {
        if argument == "--format=json" { return true }
        if argument == "--format", index + 1 < arguments.count, arguments[index + 1] == "json" { return true }
    }
    return false
}

extension FailureKind {
    /// The kind of a local failure the engine classified.
    init(_ category: SyncError.Category) {
        switch category {
        case .busy: self = .databaseBusy
        case .diskFull: self = .diskFull
        case .permissionDenied: self = .permissionDenied
        case .notAReplica, .refused, .storage: self = .failed
        }
    }
}
