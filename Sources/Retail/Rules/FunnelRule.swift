import SQLite
import SyncEngine

/// The funnel rule: stages move one step at a time and never back, and a concurrent won and
/// lost is flagged.
///
/// **What the hub judges.** Every stage write a hub merges is recorded once in
/// `rules_funnel_writes` (lead, version, stage, the `previous_stage` written with it), whether
/// or not it won the merge, so the judgement depends on the *set* of writes seen, never on
/// their arrival order. A guide's write is a *valid step* when it moves from its own
/// `previous_stage` one step on (or to lost from any open stage); a write that does not say
/// where it moved from (another tool) is taken as a valid step. A write by the rules
/// themselves is trusted.
///
/// **Compensation.** The lead's stage should be the furthest stage reached: the maximum, in the
/// order reached < needs-confirmed < demo < negotiation < lost < won, of `reached` and every valid
/// or trusted write (so a concurrent won and lost settle on won: a recorded win is not
/// dropped). When the merged stage differs (a skip, a move back, a guide who had not seen a
/// colleague's progress), the rule writes that stage as a derived update at version
/// (newest guide write's clock + 1, the origin of the target stage): it beats the write it
/// corrects, loses to any later write, is the same on every hub, and of two compensations of
/// the same write the further stage wins. The final stage (value and version) is a function of
/// the set of writes alone, so hubs fed the same writes in any order end identical.
///
/// **Reviews.** One `rule_reviews` row per write that is not a valid step
/// (`stage_skip_refused`, `stage_regress_refused`), per valid write that set a lower stage than
/// an earlier valid write had reached (`stage_regress_refused`), and per pair of a won and a lost
/// write (`won_lost_conflict`). Each is a property of the set of writes, keyed by a hash of its
/// content and stamped with the causing write's clock, so every hub logs the same rows.
struct FunnelRule {
    private static let recordSQL = """
        INSERT INTO rules_funnel_writes (lead, hlc, origin, stage, previous_stage, previous_known, trusted)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING
        """
    private static let historySQL = """
        SELECT hlc, origin, stage, previous_stage, previous_known, trusted FROM rules_funnel_writes
        WHERE lead = ? ORDER BY hlc, origin
        """
    private static let leadSQL = "SELECT stage, store FROM leads WHERE id = ?"
    private static let reachedValue = Value.text(FunnelStage.reached.rawValue)

    /// Where a batch names the lead columns the rule reads.
    struct Columns {
        var stage: Int?
        var previous: Int?

        init(_ changes: TableChanges) {
            stage = changes.index(of: Column.stage)
            previous = changes.index(of: Column.previousStage)
        }
    }

    /// Records the stage write a batch's lead row carries; returns whether the lead needs
    /// evaluating: a write not seen before, except the creation of a lead at reached and a
    /// valid step of a lead the batch created (its only write here, which is its stage: nothing
    /// to correct or log; the common cases made cheap).
    func record(_ row: RowChange, _ columns: Columns, inserted: Bool, in tx: RuleContext) throws -> Bool {
        guard !row.isDeleted, let stage = row.cell(columns.stage) else { return false }
        let previous = row.cell(columns.previous).flatMap { $0.version == stage.version ? $0 : nil }
        let trusted = RulesOrigin.isRules(stage.version.origin)
        // A lead's creation at reached changes nothing the rule computes (the funnel starts there
        // and nothing is below it): not recording it saves a write per new lead.
        if stage.version == row.lifeVersion, stage.value == Self.reachedValue, previous?.value.isNull ?? true, !trusted { return false }
        let database = tx.database
        let statement = try tx.statement("funnel.record", Self.recordSQL)
        try statement.bind(row.primaryKey, at: 1)
        try statement.bind(Int64(bitPattern: stage.version.hlc.rawValue), at: 2)
        try statement.bind(stage.version.origin.bytes, at: 3)
        try statement.bind(stage.value, at: 4)
        try statement.bind(previous?.value ?? .null, at: 5)
        try statement.bind(Int64(previous == nil ? 0 : 1), at: 6)
        try statement.bind(Int64(trusted ? 1 : 0), at: 7)
        try statement.step()
        statement.reset()
        guard database.changes > 0 else { return false }
        if inserted && (trusted || Self.isValidStep(stage: stage.value.textValue, previous: previous?.value.textValue,
                                                    previousKnown: previous != nil)) {
            return false
        }
        return true
    }

    private struct Write {
        var version: Version
        var stageText: String?
        var stage: FunnelStage?
        var previous: FunnelStage?
        var previousText: String?
        var previousKnown: Bool
        var trusted: Bool

        /// A move the funnel allows (judged from the write alone).
        var isValidStep: Bool { FunnelRule.isValidStep(stage: stageText, previous: previousText, previousKnown: previousKnown) }
    }

    /// Whether a stage write is one allowed step from the `previous_stage` written with it; a
    /// write that does not say where it moved from is taken as one.
    static func isValidStep(stage stageText: String?, previous previousText: String?, previousKnown: Bool) -> Bool {
        guard let stage = stageText.flatMap(Self.stage(named:)) else { return false }
        guard previousKnown else { return true }
        guard let previousText else { return FunnelStage.isStep(from: nil, to: stage) }
        guard let previous = Self.stage(named: previousText) else { return false }
        return FunnelStage.isStep(from: previous, to: stage)
    }

    /// A stored stage name read as `FunnelStage(name:)` reads it (any letter case, `_` for `-`),
    /// without its Foundation case mapping and replacement for ASCII names, which cost more than
    /// the rest of recording a write: an ASCII name is folded byte by byte (the same result for
    /// every ASCII text); anything else goes to `FunnelStage(name:)`.
    static func stage(named text: String) -> FunnelStage? {
        if let exact = FunnelStage(rawValue: text) { return exact }
        var folded: [UInt8] = []
        folded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case 0x80...: return FunnelStage(name: text)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): folded.append(byte | 0x20)
            case UInt8(ascii: "_"): folded.append(UInt8(ascii: "-"))
            default: folded.append(byte)
            }
        }
        return FunnelStage(rawValue: String(decoding: folded, as: UTF8.self))
    }

    /// Brings one lead's stage to the furthest stage reached and logs what the writes did.
    /// Returns (compensated, reviews written).
    func evaluate(lead: String, in tx: RuleContext) throws -> (Bool, Int) {
        guard let current = try tx.rows("funnel.lead", Self.leadSQL, [.text(lead)]).first,
              let currentVersion = try tx.version(of: RetailSchema.leads.name, primaryKey: lead, column: Column.stage) else {
            return (false, 0)
        }
        var writes: [Write] = []
        try tx.statement("funnel.history", Self.historySQL).forEachRow([.text(lead)]) { row in
            let stageText = row.text(2)
            let previousText = row.text(3)
            writes.append(Write(
                version: try row.withBlob(1) { bytes throws(SyncError) in
                    try Version.stored(hlc: row.int64(0), origin: bytes, table: "rules_funnel_writes")
                },
                stageText: stageText, stage: stageText.flatMap(Self.stage(named:)),
                previous: previousText.flatMap(Self.stage(named:)), previousText: previousText,
                previousKnown: row.int64(4) != 0, trusted: row.int64(5) != 0))
        }
        let guides = writes.filter { !$0.trusted }
        let valid = guides.filter(\.isValidStep)
        var furthest = FunnelStage.reached
        for write in writes where write.trusted || write.isValidStep {
            if let stage = write.stage, stage > furthest { furthest = stage }
        }

        // The newest guide write (or a local write the rules never saw) is what a compensation corrects.
        var base = guides.map(\.version).max()
        if !RulesOrigin.isRules(currentVersion.origin), base.map({ currentVersion > $0 }) ?? true { base = currentVersion }
        var compensated = false
        if let base {
            let target = Version(hlc: HLCTimestamp(rawValue: base.hlc.rawValue &+ 1), origin: RulesOrigin.stage(furthest))
            let stale = RulesOrigin.isRules(currentVersion.origin) && currentVersion < target
            if current[0].textValue.flatMap(Self.stage(named:)) != furthest || stale {
                compensated = try tx.update(RetailSchema.leads.name, primaryKey: lead,
                                            set: [Column.stage: .text(furthest.rawValue)], version: target)
            }
        }

        let store = current[1].textValue
        var reviews = 0
        for write in guides {
            let action: String
            let detail: String
            if let stage = write.stage, !write.isValidStep {
                let previous = write.previousText ?? "a new lead"
                if let from = write.previous, stage.level < from.level {
                    (action, detail) = ("stage_regress_refused", "stage \(stage.rawValue) set from \(previous) moves back")
                } else {
                    (action, detail) = ("stage_skip_refused", "stage \(stage.rawValue) set from \(previous) skips a stage")
                }
            } else if write.stage == nil {
                (action, detail) = ("stage_skip_refused", "the stage is not a funnel stage")
            } else if let stage = write.stage,
                      valid.contains(where: { $0.version < write.version && ($0.stage?.level ?? 0) > stage.level }) {
                (action, detail) = ("stage_regress_refused", "stage \(stage.rawValue) is below a stage an earlier write reached")
            } else {
                continue
            }
            reviews += try Review(rule: "funnel", store: store, lead: lead, action: action, detail: detail, cause: write.version)
                .write(in: tx)
        }
        let won = valid.filter { $0.stage == .won }
        let lost = valid.filter { $0.stage == .lost }
        for winning in won {
            for losing in lost {
                reviews += try Review(rule: "funnel", store: store, lead: lead, action: "won_lost_conflict",
                                      detail: "won and lost were both recorded; the lead stays won",
                                      cause: max(winning.version, losing.version), other: min(winning.version, losing.version))
                    .write(in: tx)
            }
        }
        return (compensated, reviews)
    }
}

/// One row of `rule_reviews`, derived from what caused it: its key hashes every column and the
/// causing write's version, and it is written at that write's clock, so every hub writes it alike.
struct Review {
    var rule: String
    var store: String?
    var lead: String
    var action: String
    var detail: String
    var cause: Version
    var other: Version?

    /// Writes the review unless it is already there; returns 1 when it was new.
    func write(in tx: RuleContext) throws -> Int {
        let atMs = Int64(cause.hlc.milliseconds)
        var fields = [rule, store ?? "", "leads", lead, action, detail, "\(atMs)", cause.keyText]
        if let other { fields.append(other.keyText) }
        let inserted = try tx.insert(into: RetailSchema.ruleReviews.name, primaryKey: DerivedKey.make("R-", fields), [
            Column.rule: .text(rule), Column.store: store.map(Value.text) ?? .null, Column.subjectTable: .text("leads"),
            Column.subjectID: .text(lead), Column.action: .text(action), Column.detail: .text(detail), Column.atMs: .integer(atMs),
        ], version: Version(hlc: cause.hlc, origin: RulesOrigin.reviews))
        return inserted ? 1 : 0
    }
}
