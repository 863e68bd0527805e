public import SyncEngine

/// Answers VIEW_REQUEST: the application's consolidated views (the hub knows none itself).
/// Called on a reader queue, never on the merge queue; it reads through its own connection.
public protocol ViewProvider: Sendable {
    /// The rows of `view`; throws `ViewRefusal` for an unknown view or parameters it cannot take.
    func answer(view: String, parameters: [(name: String, value: String)]) throws -> (columns: [String], rows: [[Value]])
}

/// A view request the provider cannot answer as asked; the reason reaches the client (no personal data).
public struct ViewRefusal: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
