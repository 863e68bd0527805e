import Foundation

/// What the `storesync` under test can do beyond today's main branch, found by asking it (so
/// the harness switches faults on by itself as the other branches land):
/// - `requestID`: create commands take `--request-id KEY` (a retry with the same key creates
///   nothing new and prints the first run's result). The harness then retries every create it
///   killed or that failed as retryable, and holds the CLI to exactly-once.
/// - `backup`: `storesync backup --db PATH --to NEW_PATH` exists; restore faults may run.
/// - `reidentify`: `storesync reidentify --db PATH` exists (clone faults: not yet written).
struct Capabilities: Sendable, CustomStringConvertible {
    var requestID = false
    var backup = false
    var reidentify = false

    static func probe(binary: String, scratch: String) -> Capabilities {
        func refuses(_ arguments: [String], _ words: String) -> Bool {
            let errors = scratch + ".stderr"
            defer { unlink(errors) }
            guard let result = try? Child.run(binary, arguments, scratch: scratch, stderr: errors, timeout: 30) else { return true }
            let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            return result.exit == .exited(64) && text.contains(words)
        }
        var capabilities = Capabilities()
        capabilities.requestID = !refuses(["lead", "add", "--db", scratch + ".none", "--name", "x", "--phone", "+8613800000000",
                                           "--request-id", "probe"], "unknown option --request-id")
        capabilities.backup = !refuses(["backup"], "unknown command backup")
        capabilities.reidentify = !refuses(["reidentify"], "unknown command reidentify")
        return capabilities
    }

    var description: String { "request-id=\(requestID ? "yes" : "no") backup=\(backup ? "yes" : "no") reidentify=\(reidentify ? "yes" : "no")" }
}
