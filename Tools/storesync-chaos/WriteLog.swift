/// The harness's own record of the workload: every write it attempted through the CLI, and
/// whether the CLI acknowledged it (exit 0). The checker holds the replicas to it.
enum Outcome: Sendable, Equatable {
    /// Exit 0: the write is committed and must survive everywhere its scope reaches.
    case acknowledged
    /// Refused, failed, timed out or killed: it may or may not have committed.
    case unknown
}

/// A row the workload inserted (a lead, a visit, a signal, a sale line).
struct InsertRecord: Sendable {
    var sequence: Int
    var table: String
    /// nil when the CLI did not print it (not acknowledged).
    var id: String?
    var store: String
    var terminal: String
    var outcome: Outcome
    /// Integer cents of a sale line (for the view totals).
    var amountCents: Int64 = 0
}

/// One write of one register whose final value the history determines: a lead field written
/// by one terminal (after the lead's creation), a stage move, a threshold, a store's name.
struct RegisterWrite: Sendable {
    var sequence: Int
    /// `leads/<id>/<column>`, `thresholds/<key>/min_quantity`, `stores/<id>/name`.
    var register: String
    var value: String
    var writer: String
    var outcome: Outcome
}

struct WriteLog: Sendable {
    var inserts: [InsertRecord] = []
    var registers: [RegisterWrite] = []
    var sequence = 0

    mutating func next() -> Int {
        sequence += 1
        return sequence
    }

    var acknowledged: Int {
        inserts.filter { $0.outcome == .acknowledged }.count + registers.filter { $0.outcome == .acknowledged }.count
    }
}
