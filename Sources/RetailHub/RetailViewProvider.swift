public import Hub
import Retail
public import SyncEngine

/// The consolidated views a hub serves over the protocol, read through their own connection.
public struct RetailViewProvider: ViewProvider {
    public let reader: ReplicaReader
    public let clock: HybridLogicalClock

    public init(reader: ReplicaReader, clock: HybridLogicalClock) {
        self.reader = reader
        self.clock = clock
    }

    public func answer(view: String, parameters: [(name: String, value: String)]) throws -> (columns: [String], rows: [[Value]]) {
        guard ReportQuery.View(rawValue: view) != nil else {
            throw ViewRefusal("unknown view \(view); views are \(ReportQuery.View.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let query: ReportQuery
        do {
            query = try ReportQuery(view: view, parameters: parameters)
        } catch {
            // A known view: what is wrong is a parameter (UNKNOWN_VIEW stays for unknown names).
            throw ViewRefusal.badParameter(error.description)
        }
        let now = Int64(bitPattern: clock.wallMilliseconds())
        let table = try RetailViews.run(query, from: reader, nowMilliseconds: now)
        return (table.columns, table.rows)
    }
}
