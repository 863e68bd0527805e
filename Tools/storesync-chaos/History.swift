import Foundation
import LockBox

/// Everything a schedule did, in order: operations (with their outcome), faults, syncs, heals.
/// Printed (filtered to what a failure concerns) when a check fails, and written whole to the
/// run directory.
final class History: Sendable {
    struct Entry: Sendable {
        var milliseconds: Int
        var kind: Kind
        var text: String
    }

    enum Kind: String, Sendable {
        case op, fault, sync, heal, note
    }

    private let start = Date()
    private let entries = LockBox<[Entry]>([])
    private let echo: Bool

    init(echo: Bool) { self.echo = echo }

    func record(_ kind: Kind, _ text: String) {
        let entry = Entry(milliseconds: Int(Date().timeIntervalSince(start) * 1000), kind: kind, text: text)
        entries.withLockedValue { $0.append(entry) }
        if echo { FileHandle.standardError.write(Data("  \(History.format(entry))\n".utf8)) }
    }

    var all: [Entry] { entries.withLockedValue { $0 } }

    func count(_ kind: Kind) -> Int { entries.withLockedValue { $0.filter { $0.kind == kind }.count } }

    static func format(_ entry: Entry) -> String {
        let seconds = String(format: "%7.3f", Double(entry.milliseconds) / 1000)
        return "\(seconds) \(entry.kind.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)) \(entry.text)"
    }

    /// The faults and heals, and the operations and syncs that mention one of `words`: the
    /// part of the history a failure about those rows depends on.
    func relevant(to words: Set<String>, limit: Int = 200) -> [String] {
        let chosen = all.filter { entry in
            switch entry.kind {
            case .fault, .heal, .note: return true
            case .op, .sync: return words.contains { !$0.isEmpty && entry.text.contains($0) }
            }
        }
        let lines = chosen.map(History.format)
        return lines.count > limit ? Array(lines.suffix(limit)) : lines
    }

    func write(to path: String) {
        let text = all.map(History.format).joined(separator: "\n") + "\n"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
