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

    private struct GroupKey: Hashable, Comparable {
        var store: String
        var phone: String
        static func < (lhs: GroupKey, rhs: GroupKey) -> Bool { (lhs.store, lhs.phone) < (rhs.store, rhs.phone) }
    }

    /// Re-links the groups of leads a batch inserted or whose store or phone it changed.
    /// Returns (links written, reviews written).
    func apply(changed leads: [String], in tx: WriteTransaction) throws -> (Int, Int) {
        let database = tx.database
        var groups: Set<GroupKey> = []
        var touched: Set<String> = []
        for lead in leads where touched.insert(lead).inserted {
            if let key = try groupKey(of: lead, database) { groups.insert(key) }
            // A canonical lead that moved away leaves its former duplicates to re-link.
            for row in try database.fetchAll(Self.pointingSQL, [.text(lead)]) {
                if let member = row[0].textValue, let key = try groupKey(of: member, database) { groups.insert(key) }
            }
        }
        var links = 0
        var reviews = 0
        for key in groups.sorted() {
            let (written, logged) = try relink(key, tx)
            links += written
            reviews += logged
        }
        return (links, reviews)
    }

    private func groupKey(of lead: String, _ database: Database) throws -> GroupKey? {
        guard let row = try database.fetchAll(Self.keySQL, [.text(lead)]).first,
              let store = row[0].textValue, let phone = row[1].textValue, !phone.isEmpty else { return nil }
        return GroupKey(store: store, phone: phone)
    }

    private struct Member {
        var id: String
        var canonicalID: String?
        var life: Version
    }

    private func relink(_ key: GroupKey, _ tx: WriteTransaction) throws -> (Int, Int) {
        let leads = RetailSchema.leads.name
        var members: [Member] = []
        var newest: UInt64 = 0
        for row in try tx.database.fetchAll(Self.groupSQL, [.text(key.store), .text(key.phone)]) {
            guard let id = row[0].textValue, let life = try tx.lifeVersion(of: leads, primaryKey: id) else { continue }
            members.append(Member(id: id, canonicalID: row[1].textValue, life: life))
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
