public import SyncEngine
import SQLite

/// A new lead as a guide enters it.
public struct LeadDraft: Sendable {
    public var customerName: String
    public var phone: String
    public var source: String?
    public var score: Int64?
    public var ownerGuide: String?

    public init(customerName: String, phone: String, source: String? = nil, score: Int64? = nil, ownerGuide: String? = nil) {
        self.customerName = customerName
        self.phone = phone
        self.source = source
        self.score = score
        self.ownerGuide = ownerGuide
    }
}

/// Fields of a lead to change; nil leaves a field as it is.
public struct LeadChanges: Sendable {
    public var customerName: String?
    public var phone: String?
    public var source: String?
    public var score: Int64?
    public var ownerGuide: String?

    public init(customerName: String? = nil, phone: String? = nil, source: String? = nil, score: Int64? = nil, ownerGuide: String? = nil) {
        self.customerName = customerName
        self.phone = phone
        self.source = source
        self.score = score
        self.ownerGuide = ownerGuide
    }

    public var isEmpty: Bool { customerName == nil && phone == nil && source == nil && score == nil && ownerGuide == nil }
}

/// A lead as `lead list` shows it, with the activity that counts for it.
public struct LeadSummary: Sendable, Hashable {
    public var id: String
    public var store: String
    public var ownerGuide: String?
    public var customerName: String?
    public var phone: String?
    public var source: String?
    public var score: Int64?
    public var grade: String?
    public var stage: String?
    public var createdMs: Int64?
    public var lastTouchMs: Int64?
    public var nextActionDueMs: Int64?
    public var firstResponseMs: Int64?
    /// The canonical lead this one duplicates (nil: it is canonical).
    public var canonicalID: String?
    /// Visits and sales of the lead; for a canonical lead, those of its duplicates too.
    public var visits: Int64
    public var sales: Int64
    public var salesCents: Int64
}

/// The guide's lead operations on a terminal replica. Each is one transaction: it validates
/// everything first, so refused input changes nothing.
public enum Leads {
    static let stageSQL = "SELECT stage, grade, created_ms, last_touch_ms, first_response_ms FROM leads WHERE id = ? AND store = ?"

    /// Creates a lead at `reached`; returns its id.
    public static func add(_ draft: LeadDraft, store: String, in replica: Replica, now: Int64) throws -> String {
        let name = try Identifier.text(draft.customerName, field: "--name")
        let normalized = try PhoneNumber.normalize(draft.phone)
        let source = try draft.source.map { try Identifier.text($0, field: "--source", limit: 64) }
        let owner = try draft.ownerGuide.map { try Identifier.check($0, field: "--owner") }
        if let score = draft.score, !(0...100).contains(score) {
            throw RetailError.invalidValue(field: "--score", expected: "a whole number from 0 to 100")
        }
        let grade = LeadGrade(score: draft.score)
        let id = UniqueID.make(milliseconds: UInt64(max(0, now)))
        let row: [ColumnName: Value] = [
            Column.store: .text(store), Column.ownerGuide: owner.map(Value.text) ?? .null,
            Column.customerName: .text(name), Column.phone: .text(draft.phone.trimmingWhitespace()),
            Column.phoneNormalized: .text(normalized), Column.source: source.map(Value.text) ?? .null,
            Column.score: draft.score.map(Value.integer) ?? .null, Column.grade: .text(grade.rawValue),
            Column.stage: .text(FunnelStage.reached.rawValue), Column.previousStage: .null,
            Column.createdMs: .integer(now), Column.lastTouchMs: .null,
            Column.nextActionDueMs: .integer(grade.due(createdMs: now, lastTouchMs: nil)),
            Column.firstResponseMs: .null, Column.canonicalID: .null,
        ]
        // The checks above explain a refusal in the command's terms; this one is the schema every hub enforces.
        if let refusal = RetailSchemaRules.leads.refusal(key: id, row, whole: true) { throw refusal }
        try replica.write { tx in try tx.insert(into: RetailSchema.leads.name, primaryKey: id, row) }
        return id
    }

    /// Changes some fields of a lead of `store`; only those fields get new versions, so a
    /// concurrent edit of another field elsewhere survives. A new score re-grades the lead and
    /// moves its due time to the new grade's window.
    public static func update(_ id: String, _ changes: LeadChanges, store: String, in replica: Replica) throws {
        var values: [ColumnName: Value] = [:]
        if let name = changes.customerName { values[Column.customerName] = .text(try Identifier.text(name, field: "--name")) }
        if let phone = changes.phone {
            values[Column.phoneNormalized] = .text(try PhoneNumber.normalize(phone))
            values[Column.phone] = .text(phone.trimmingWhitespace())
        }
        if let source = changes.source { values[Column.source] = .text(try Identifier.text(source, field: "--source", limit: 64)) }
        if let owner = changes.ownerGuide { values[Column.ownerGuide] = .text(try Identifier.check(owner, field: "--owner")) }
        if let score = changes.score, !(0...100).contains(score) {
            throw RetailError.invalidValue(field: "--score", expected: "a whole number from 0 to 100")
        }
        // Refusals are returned, not thrown, out of the write: nothing was written, and the
        // engine reports errors thrown inside a transaction as storage errors.
        let outcome: Result<Void, RetailError> = try replica.write { tx in
            guard let row = try tx.database.fetchAll(stageSQL, [.text(id), .text(store)]).first else {
                return .failure(.unknownLead(id))
            }
            if let score = changes.score {
                let grade = LeadGrade(score: score)
                values[Column.score] = .integer(score)
                values[Column.grade] = .text(grade.rawValue)
                let closed = row[0].textValue.flatMap(FunnelStage.init(name:))?.isClosed ?? false
                if !closed, let created = row[2].integerValue {
                    values[Column.nextActionDueMs] = .integer(grade.due(createdMs: created, lastTouchMs: row[3].integerValue))
                }
            }
            if let refusal = RetailSchemaRules.leads.refusal(key: id, values, whole: false) { return .failure(refusal) }
            try tx.update(RetailSchema.leads.name, primaryKey: id, set: values)
            return .success(())
        }
        try outcome.get()
    }

    /// Moves a lead of `store` one step along the funnel (or to lost from any open stage) and
    /// counts it as a touch. Any other move is refused here; the hub's funnel rule corrects
    /// what concurrent edits on other terminals make of it.
    @discardableResult
    public static func move(_ id: String, to stage: FunnelStage, store: String, in replica: Replica, now: Int64) throws -> FunnelStage {
        let outcome: Result<FunnelStage, RetailError> = try replica.write { tx in
            guard let row = try tx.database.fetchAll(stageSQL, [.text(id), .text(store)]).first else {
                return .failure(.unknownLead(id))
            }
            let current = row[0].textValue.flatMap(FunnelStage.init(name:))
            guard let current, current != stage, FunnelStage.isStep(from: current, to: stage) else {
                return .failure(.stageChange(lead: id, from: row[0].textValue ?? "no stage", to: stage.rawValue,
                                             allowed: (current?.next ?? []).map(\.rawValue)))
            }
            var values: [ColumnName: Value] = [
                Column.stage: .text(stage.rawValue), Column.previousStage: .text(current.rawValue),
            ]
            touch(&values, row: row, now: now, closing: stage.isClosed)
            if let refusal = RetailSchemaRules.leads.refusal(key: id, values, whole: false) { return .failure(refusal) }
            try tx.update(RetailSchema.leads.name, primaryKey: id, set: values)
            return .success(current)
        }
        return try outcome.get()
    }

    /// Whether `store` has the lead `id`, inside the caller's transaction.
    static func exists(_ id: String, store: String, in tx: WriteTransaction) throws -> Bool {
        try !tx.database.fetchAll(stageSQL, [.text(id), .text(store)]).isEmpty
    }

    /// Marks a lead of `store` touched now (a visit or a sale with it), inside the caller's
    /// transaction; false (and nothing written) when the store has no such lead. The caller
    /// checked `now` as its own row's time: a touch writes only times and a due date from it.
    static func touch(_ id: String, store: String, now: Int64, in tx: WriteTransaction) throws -> Bool {
        guard let row = try tx.database.fetchAll(stageSQL, [.text(id), .text(store)]).first else { return false }
        var values: [ColumnName: Value] = [:]
        touch(&values, row: row, now: now, closing: row[0].textValue.flatMap(FunnelStage.init(name:))?.isClosed ?? false)
        try tx.update(RetailSchema.leads.name, primaryKey: id, set: values)
        return true
    }

    /// The cells a touch sets, from a row of `stageSQL`: last touch, first response if none yet,
    /// and the next due time (none once the lead is closed).
    private static func touch(_ values: inout [ColumnName: Value], row: [SQLValue], now: Int64, closing: Bool) {
        values[Column.lastTouchMs] = .integer(now)
        if row[4].isNull { values[Column.firstResponseMs] = .integer(now) }
        let grade = row[1].textValue.flatMap(LeadGrade.init(rawValue:)) ?? .c
        values[Column.nextActionDueMs] = closing ? .null : .integer(grade.due(createdMs: row[2].integerValue ?? now, lastTouchMs: now))
    }

    private static let listSQL = """
        SELECT l.id, l.store, l.owner_guide, l.customer_name, l.phone, l.source, l.score, l.grade, l.stage,
               l.created_ms, l.last_touch_ms, l.next_action_due_ms, l.first_response_ms, l.canonical_id,
               (SELECT count(*) FROM visits AS v WHERE v.lead = l.id
                    OR (l.canonical_id IS NULL AND v.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id))),
               (SELECT count(*) FROM sales AS s WHERE s.lead = l.id
                    OR (l.canonical_id IS NULL AND s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id))),
               (SELECT CAST(total(\(LeadViews.validAmount("s"))) AS INTEGER) FROM sales AS s WHERE s.lead = l.id
                    OR (l.canonical_id IS NULL AND s.lead IN (SELECT d.id FROM leads AS d WHERE d.canonical_id = l.id)))
        FROM leads AS l
        WHERE l.store = ?1 AND (?2 IS NULL OR l.grade = ?2)
          AND (?3 IS NULL OR (COALESCE(l.stage, '') NOT IN ('won', 'lost') AND l.next_action_due_ms < ?3))
        ORDER BY l.next_action_due_ms IS NULL, l.next_action_due_ms, l.id
        """

    /// The leads of `store`, soonest due first; `grade` keeps one grade, `overdueAt` keeps open
    /// leads whose next action was due before that time.
    public static func list(store: String, grade: LeadGrade? = nil, overdueAt: Int64? = nil, in replica: Replica) throws -> [LeadSummary] {
        let parameters: [SQLValue] = [.text(store), grade.map { .text($0.rawValue) } ?? .null, overdueAt.map(SQLValue.integer) ?? .null]
        let rows = try replica.read { database in try database.fetchAll(listSQL, parameters) }
        return rows.map { row in
            LeadSummary(
                id: row[0].textValue ?? "", store: row[1].textValue ?? "", ownerGuide: row[2].textValue,
                customerName: row[3].textValue, phone: row[4].textValue, source: row[5].textValue, score: row[6].integerValue,
                grade: row[7].textValue, stage: row[8].textValue, createdMs: row[9].integerValue, lastTouchMs: row[10].integerValue,
                nextActionDueMs: row[11].integerValue, firstResponseMs: row[12].integerValue, canonicalID: row[13].textValue,
                visits: row[14].integerValue ?? 0, sales: row[15].integerValue ?? 0, salesCents: row[16].integerValue ?? 0)
        }
    }
}
