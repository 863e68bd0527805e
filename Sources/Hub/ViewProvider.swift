public import SyncEngine

/// Answers VIEW_REQUEST: the application's consolidated views (the hub knows none itself).
/// Called on a reader queue, never on the merge queue; it reads through its own connection.
/// The hub streams the answer in VIEW_ROWS chunks at the client's pace (PROTOCOL.md §5.6).
public protocol ViewProvider: Sendable {
    /// The rows of `view`; throws `ViewRefusal` for an unknown view (`.unknownView`) or a known
    /// view with a missing, unknown or malformed parameter (`.badParameter`).
    func answer(view: String, parameters: [(name: String, value: String)]) throws -> (columns: [String], rows: [[Value]])
}

/// A view request the provider cannot answer as asked; the reason reaches the client (no personal data).
public struct ViewRefusal: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No view of that name: UNKNOWN_VIEW.
        case unknownView
        /// A known view with a missing, unknown or malformed parameter: BAD_VIEW_PARAMETER.
        case badParameter
    }

    public var reason: String
    public var kind: Kind

    public init(_ reason: String, kind: Kind = .unknownView) {
        self.reason = reason
        self.kind = kind
    }

    /// A known view asked with a parameter it cannot take (BAD_VIEW_PARAMETER).
    public static func badParameter(_ reason: String) -> ViewRefusal { ViewRefusal(reason, kind: .badParameter) }

    public var description: String { reason }
}
