public import Hub
public import Retail
public import SyncEngine
public import Wire

/// The retail deployment's scopes, as a hub enforces them: a terminal sees its store, a regional
/// hub its region, and a hub serves only what lies inside its own scope.
public struct RetailScopePolicy: ScopePolicy {
    public let own: NodeScope
    public let directory: StoreDirectory

    public init(own: NodeScope, directory: StoreDirectory) {
        self.own = own
        self.directory = directory
    }

    public func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope {
        if scope == ReportScope.name {
            guard role != .terminal else { throw ScopeRefusal("a terminal may not ask for scope \(scope)") }
            return NoRows()
        }
        guard let requested = NodeScope(scope) else {
            throw ScopeRefusal("scope \(scope) is not store:ID, region:ID or all")
        }
        switch (role, requested) {
        case (.terminal, .store), (.hub, .region):
            break
        default:
            throw ScopeRefusal("a \(role) may not ask for scope \(requested)")
        }
        if let reason = own.refusal(toServe: requested, regions: try directory.regions()) {
            throw ScopeRefusal(reason)
        }
        return RetailRowScope(scope: requested, directory: directory)
    }

    /// Views span the whole hub: only an analyst's report session may ask for them.
    public func allowsViews(role: Role, scope: String) -> Bool {
        role != .terminal && scope == ReportScope.name
    }
}

/// An analyst's report session exchanges no rows: it only asks for views.
private struct NoRows: RowScope {
    func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool { false }
}

/// The scope an analyst's report session asks for: views only, no rows either way.
public enum ReportScope {
    public static let name = "report"
}
