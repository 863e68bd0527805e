import Foundation
import Retail
import SyncEngine

/// `storesync lead add --db PATH --name NAME --phone PHONE [--source S] [--score N] [--owner GUIDE] [--format text|json]`
func runLeadAdd(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "name", "phone", "source", "score", "owner", "format", "request-id"])
    let format = try OutputFormat(arguments)
    let draft = LeadDraft(customerName: try arguments.required("name"), phone: try arguments.required("phone"),
                          source: arguments.optional("source"), score: try wholeNumber(arguments, "score"),
                          ownerGuide: arguments.optional("owner"))
    let (replica, store) = try openTerminal(arguments)
    let created = try createOnce(arguments, command: "lead add", replica: replica, tables: [RetailSchema.leads]) {
        [RetailSchema.leads.name.rawValue: try retail { try Leads.add(draft, store: store, in: replica, now: now(replica)) }]
    }
    let id = created[RetailSchema.leads.name.rawValue] ?? ""
    if format == .json { try printJSON(["id": id]) } else { print(id) }
}

/// `storesync lead update --db PATH --id ID [--name NAME] [--phone PHONE] [--source S] [--score N] [--owner GUIDE]`
func runLeadUpdate(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "id", "name", "phone", "source", "score", "owner", "format"])
    let format = try OutputFormat(arguments)
    let id = try arguments.required("id")
    let changes = LeadChanges(customerName: arguments.optional("name"), phone: arguments.optional("phone"),
                              source: arguments.optional("source"), score: try wholeNumber(arguments, "score"),
                              ownerGuide: arguments.optional("owner"))
    guard !changes.isEmpty else { throw UsageError(message: "give at least one of --name, --phone, --source, --score, --owner") }
    let (replica, store) = try openTerminal(arguments)
    try retail { try Leads.update(id, changes, store: store, in: replica) }
    if format == .json { try printJSON(["id": id]) } else { print(id) }
}

/// `storesync lead stage --db PATH --id ID --to STAGE [--format text|json]`
func runLeadStage(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "id", "to", "format"])
    let format = try OutputFormat(arguments)
    let id = try arguments.required("id")
    let name = try arguments.required("to")
    guard let stage = FunnelStage(name: name) else {
        throw UsageError(message: "--to is one of \(FunnelStage.allCases.map(\.rawValue).joined(separator: ", ")), got \(name)")
    }
    let (replica, store) = try openTerminal(arguments)
    let from: FunnelStage
    do {
        from = try retail { try Leads.move(id, to: stage, store: store, in: replica, now: now(replica)) }
    } catch let error as CommandError {
        // Moving a lead to the stage it is at is what a retried script does: it succeeds.
        let current = try replica.read { database in
            try database.fetchAll("SELECT stage FROM leads WHERE id = ? AND store = ?", [.text(id), .text(store)]).first?.first?.textValue
        }
        guard let current, FunnelStage(name: current) == stage else { throw error }
        if format == .json {
            try printJSON(["id": id, "from": stage.rawValue, "to": stage.rawValue, "result": "already at"])
        } else {
            print("\(id) already at \(stage.rawValue)")
        }
        return
    }
    if format == .json {
        try printJSON(["id": id, "from": from.rawValue, "to": stage.rawValue])
    } else {
        print("\(id) \(from.rawValue) -> \(stage.rawValue)")
    }
}

/// `storesync lead list --db PATH [--grade A|B|C] [--overdue] [--format text|json]`
func runLeadList(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "grade", "overdue", "format"])
    let format = try OutputFormat(arguments)
    let grade = try arguments.optional("grade").map { text -> LeadGrade in
        guard let grade = LeadGrade(rawValue: text.uppercased()) else { throw UsageError(message: "--grade is A, B or C, got \(text)") }
        return grade
    }
    let (replica, store) = try openTerminal(arguments)
    let leads = try Leads.list(store: store, grade: grade, overdueAt: arguments.flag("overdue") ? now(replica) : nil, in: replica)
    if format == .json {
        try printJSON(leads.map(LeadJSON.init))
        return
    }
    printTable(["ID", "GRADE", "STAGE", "DUE", "OWNER", "NAME", "PHONE", "VISITS", "SALES", "DUPLICATE_OF"], leads.map { lead in
        [lead.id, lead.grade ?? "-", lead.stage ?? "-", timeText(lead.nextActionDueMs), lead.ownerGuide ?? "-",
         lead.customerName ?? "-", lead.phone ?? "-", "\(lead.visits)", RetailViews.decimal(cents: lead.salesCents),
         lead.canonicalID ?? "-"]
    })
}

/// One lead in `lead list --format json`.
private struct LeadJSON: Encodable {
    var id: String
    var store: String
    var owner: String?
    var name: String?
    var phone: String?
    var source: String?
    var score: Int64?
    var grade: String?
    var stage: String?
    var created_ms: Int64?
    var last_touch_ms: Int64?
    var next_action_due_ms: Int64?
    var first_response_ms: Int64?
    var duplicate_of: String?
    var visits: Int64
    var sales: Int64
    var sales_amount: String

    init(_ lead: LeadSummary) {
        id = lead.id
        store = lead.store
        owner = lead.ownerGuide
        name = lead.customerName
        phone = lead.phone
        source = lead.source
        score = lead.score
        grade = lead.grade
        stage = lead.stage
        created_ms = lead.createdMs
        last_touch_ms = lead.lastTouchMs
        next_action_due_ms = lead.nextActionDueMs
        first_response_ms = lead.firstResponseMs
        duplicate_of = lead.canonicalID
        visits = lead.visits
        sales = lead.sales
        sales_amount = RetailViews.decimal(cents: lead.salesCents)
    }

    // Absent values are JSON nulls, so every object has every key.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(store, forKey: .store)
        try container.encode(owner, forKey: .owner)
        try container.encode(name, forKey: .name)
        try container.encode(phone, forKey: .phone)
        try container.encode(source, forKey: .source)
        try container.encode(score, forKey: .score)
        try container.encode(grade, forKey: .grade)
        try container.encode(stage, forKey: .stage)
        try container.encode(created_ms, forKey: .created_ms)
        try container.encode(last_touch_ms, forKey: .last_touch_ms)
        try container.encode(next_action_due_ms, forKey: .next_action_due_ms)
        try container.encode(first_response_ms, forKey: .first_response_ms)
        try container.encode(duplicate_of, forKey: .duplicate_of)
        try container.encode(visits, forKey: .visits)
        try container.encode(sales, forKey: .sales)
        try container.encode(sales_amount, forKey: .sales_amount)
    }

    private enum CodingKeys: String, CodingKey {
        case id, store, owner, name, phone, source, score, grade, stage, created_ms, last_touch_ms, next_action_due_ms
        case first_response_ms, duplicate_of, visits, sales, sales_amount
    }
}

/// `storesync visit log --db PATH --guide G [--lead ID] [--customer NAME] [--duration-min N] [--products SKU,…] [--outcome TEXT]`
func runVisitLog(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "guide", "lead", "customer", "duration-min", "products", "outcome", "format", "request-id"])
    let format = try OutputFormat(arguments)
    let products = arguments.optional("products").map { text in
        text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    } ?? []
    let draft = VisitDraft(guide: try arguments.required("guide"), lead: arguments.optional("lead"),
                           customerName: arguments.optional("customer"), durationMinutes: try wholeNumber(arguments, "duration-min"),
                           products: products, outcome: arguments.optional("outcome"))
    let (replica, store) = try openTerminal(arguments)
    let created = try createOnce(arguments, command: "visit log", replica: replica, tables: [RetailSchema.visits]) {
        [RetailSchema.visits.name.rawValue: try retail { try FieldActivity.logVisit(draft, store: store, in: replica, now: now(replica)) }]
    }
    let id = created[RetailSchema.visits.name.rawValue] ?? ""
    if format == .json { try printJSON(["id": id]) } else { print(id) }
}
