/// Input the retail operations refuse, and why. Messages name ids and fields, never personal
/// data (a customer's name or phone).
public enum RetailError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A malformed value for a field: the field and what it must be.
    case invalidValue(field: String, expected: String)
    case unknownLead(String)
    /// A stage change the funnel does not allow, from `from` to `to`.
    case stageChange(lead: String, from: String, to: String, allowed: [String])
    /// The replica is not the kind of node the operation is for.
    case wrongNode(String)
    /// The row a write would make breaks the application schema (the same check hubs make on
    /// pushed rows); it names table, column and reason, never the value.
    case schemaViolation(SchemaViolation)

    public var description: String {
        switch self {
        case .invalidValue(let field, let expected):
            return "\(field) must be \(expected)"
        case .unknownLead(let id):
            return "no lead \(id) in this store"
        case .stageChange(let lead, let from, let to, let allowed):
            let next = allowed.isEmpty ? "it is closed" : "it can move to \(allowed.joined(separator: " or "))"
            return "lead \(lead) is at \(from) and cannot move to \(to); \(next)"
        case .wrongNode(let reason):
            return reason
        case .schemaViolation(let violation):
            return violation.description
        }
    }
}
