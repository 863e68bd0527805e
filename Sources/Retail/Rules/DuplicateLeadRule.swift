import SQLite
import SyncEngine

/// The duplicate-lead rule: leads of one store with the same normalised phone are one customer.
///
/// **Semantics.** The live leads with the same (store, phone_normalized) form a group; its
/// *canonical* lead is the one whose life started first by version (the engine's order of
/// writes, the same everywhere; ties by id). Every other member gets `canonical_id` = the
/// canonical lead's id; the canonical lead's `canonical_id` is NULL. Views count the visits and
/// sales of a duplicate for its canonical lead.
///
/// **Versions.** A link is a derived update of `canonical_id` at version
/// (g + n, the links origin), where n is the group's size and g the newest clock among the
/// members' lives, stores and phones. A group only grows as leads arrive, so a later decision
/// always has a higher version than an earlier one on the same hub, and every hub that holds the
/// same group writes the same value at the same version (a member that left the group by a
/// phone change is re-linked above its current version).
///
/// **Reviews.** One `duplicate_lead` review per lead found to duplicate another, keyed by the
/// lead and its life: a lead that stops being canonical never becomes canonical again as the
/// group grows, so the set of reviews depends on the group, not on arrival order.
struct DuplicateLeadRule {
    private static let keySQL = "SELECT store, phone_normalized FROM leads WHERE id = ?"
    private static let pointingSQL = "SELECT id FROM leads WHERE canonical_id = ?"
    private static let groupSQL = "SELECT id, canonical_id FROM leads WHERE store = ?1 AND phone_normalized = ?2"
    private static let groupSizeSQL = "SELECT count(*) FROM leads WHERE store = ?1 AND phone_normalized = ?2"

    struct GroupKey: Hashable {
        var store: String
        var phone: String
    }

    /// The group key a batch's row carries (its store and normalised phone), if it has both.
    static func key(of row: RowChange, store: Int?, phone: Int?) -> GroupKey? {
        guard case .text(let storeID)? = row.cell(store)?.value, case .text(let number)? = row.cell(phone)?.value,
              !number.isEmpty else { return nil }
        return GroupKey(store: storeID, phone: number)
    }

    /// Re-links the group of a lead the batch inserted; its key and link come from the batch's
    /// cells (what the row now holds), which saves a lookup per new lead. A lead new here has no
    /// duplicates pointing to it from another group (any lead pointing to it shares its phone).
    /// The common case, a new lead alone with its phone and linked to nothing, costs one count
    /// over the (store, phone_normalized) index, which reads no row of the table.
    /// Returns (links written, reviews written).
    func inserted(_ key: GroupKey?, linked: Bool, in tx: RuleContext) throws -> (Int, Int) {
        guard let key else { return (0, 0) }
        if !linked, try tx.scalar("duplicates.groupSize", Self.groupSizeSQL, [.text(key.store), .text(key.phone)])?.integerValue == 1 {
            return (0, 0)
        }
        return try relink(key, tx)
    }

    /// Re-links the groups a lead whose store or phone changed left and joined.
    func moved(_ lead: String, in tx: RuleContext) throws -> (Int, Int) {
        var groups: [GroupKey] = []
        if let key = try groupKey(of: lead, tx) { groups.append(key) }
        // A canonical lead that moved away leaves its former duplicates to re-link.
        for row in try tx.rows("duplicates.pointing", Self.pointingSQL, [.text(lead)]) {
            if let member = row[0].textValue, let key = try groupKey(of: member, tx), !groups.contains(key) { groups.append(key) }
        }
        var links = 0
        var reviews = 0
        for key in groups {
            let (written, logged) = try relink(key, tx)
            links += written
            reviews += logged
        }
        return (links, reviews)
    }

    private func groupKey(of lead: String, _ tx: RuleContext) throws -> GroupKey? {
        guard let row = try tx.rows("duplicates.key", Self.keySQL, [.text(lead)]).first,
              let store = row[0].textValue, let phone = row[1].textValue, !phone.isEmpty else { return nil }
        return GroupKey(store: store, phone: phone)
    }

    private struct Member {
        var id: String
        var canonicalID: String?
        var life: Version
    }

    private func relink(_ key: GroupKey, _ tx: RuleContext) throws -> (Int, Int) {
        let leads = RetailSchema.leads.name
        var rows: [(id: String, canonicalID: String?)] = []
        let group = try tx.statement("duplicates.group", Self.groupSQL)
        try group.bind(key.store, at: 1)
        try group.bind(key.phone, at: 2)
        while try group.step() {
            rows.append((group.text(at: 0) ?? "", group.text(at: 1)))
        }
        group.reset()
        // A lead alone with its phone (the common case) and linked to nothing: nothing to do.
        if rows.count == 1, rows[0].canonicalID == nil { return (0, 0) }
        var members: [Member] = []
        var newest: UInt64 = 0
        for row in rows {
            let id = row.id
            guard let life = try tx.lifeVersion(of: leads, primaryKey: id) else { continue }
            members.append(Member(id: id, canonicalID: row.canonicalID, life: life))
            newest = max(newest, life.hlc.rawValue)
            for column in [Column.phoneNormalized, Column.store] {
                if let version = try tx.version(of: leads, primaryKey: id, column: column) { newest = max(newest, version.hlc.rawValue) }
            }
        }
        guard let canonical = members.min(by: { $0.life != $1.life ? $0.life < $1.life : $0.id < $1.id }) else { return (0, 0) }
        let decided = newest &+ UInt64(members.count)
        var links = 0
        var reviews = 0
        for member in members {
            let desired = member.id == canonical.id ? nil : canonical.id
            let current = try tx.version(of: leads, primaryKey: member.id, column: Column.canonicalID)
            var hlc = decided
            if let current, current.hlc.rawValue >= hlc, member.canonicalID != desired { hlc = current.hlc.rawValue &+ 1 }
            let target = Version(hlc: HLCTimestamp(rawValue: hlc), origin: RulesOrigin.links)
            let stale = current.map { $0.origin == RulesOrigin.links && $0 < target } ?? false
            if member.canonicalID != desired || stale {
                if try tx.update(leads, primaryKey: member.id, set: [Column.canonicalID: desired.map(Value.text) ?? .null], version: target) {
                    links += 1
                }
            }
            if desired != nil {
                reviews += try Review(rule: "duplicate_leads", store: key.store, lead: member.id, action: "duplicate_lead",
                                      detail: "same phone as an earlier lead of the store", cause: member.life).write(in: tx)
            }
        }
        return (links, reviews)
    }
}
