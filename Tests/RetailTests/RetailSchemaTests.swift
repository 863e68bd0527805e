import Foundation
import Retail
import SQLite
import SyncEngine
import XCTest

final class RetailSchemaTests: XCTestCase {
    /// The tables analysts query with the `sqlite3` shell are the public interface: their names
    /// and the column names a replica creates must not drift.
    func testReplicaCreatesEveryRetailTableAsPlainSQL() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("retail-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        _ = try Replica(path: path, schema: RetailSchema.all)

        let database = try Database(path: path)
        for table in RetailSchema.all {
            let columns = try database.fetchAll("SELECT name FROM pragma_table_info(?) ORDER BY cid", [.text(table.name.rawValue)])
            XCTAssertEqual(columns, ([table.primaryKey] + table.columns.map(\.name)).map { [SQLValue.text($0.rawValue)] },
                           "columns of \(table.name.rawValue)")
        }
    }
}
