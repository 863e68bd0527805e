import Foundation
import Retail
import SyncEngine
import XCTest

final class RetailScopeTests: XCTestCase {
    private func temporaryReplica() throws -> (Replica, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("scope-\(UUID().uuidString).sqlite").path
        addTeardownBlock { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        return (try Replica(path: path, schema: RetailSchema.all), path)
    }

    private func column(_ name: String) throws -> ColumnName { try ColumnName(name) }

    private func addStore(_ replica: Replica, _ id: String, region: String) throws {
        try replica.write { tx in
            try tx.insert(into: RetailSchema.stores.name, primaryKey: id, [
                try column("name"): .text("Store \(id)"), try column("region"): .text(region),
                try column("latitude"): .real(31.2), try column("longitude"): .real(121.5),
            ])
        }
    }

    /// A row as a batch carries it: every written cell.
    private func row(_ table: TableSchema, _ key: String, _ values: [String: Value]) throws -> (RowChange, [ColumnName]) {
        let columns = table.columns.map(\.name)
        let version = Version(hlc: HLCTimestamp(rawValue: 1 << 20), origin: ReplicaID.random())
        let cells = try values.map { name, value in
            Cell(column: try XCTUnwrap(columns.firstIndex(of: try column(name))), value: value, version: version)
        }
        return (RowChange(primaryKey: key, causalLength: 1, lifeVersion: version, cells: cells), columns)
    }

    func testScopeTextRoundTripsAndRejectsGarbage() {
        for text in ["store:S01", "region:north", "all"] {
            XCTAssertEqual(NodeScope(text)?.description, text)
        }
        for text in ["store:", "region:", "", "everything", "Store:S01"] {
            XCTAssertNil(NodeScope(text), text)
        }
    }

    func testWhoMayServeWhom() {
        let regions = ["S01": "north", "S02": "south"]
        XCTAssertNil(NodeScope.region("north").refusal(toServe: .store("S01"), regions: regions))
        XCTAssertNotNil(NodeScope.region("north").refusal(toServe: .store("S02"), regions: regions), "another region's store")
        XCTAssertNotNil(NodeScope.region("north").refusal(toServe: .store("S99"), regions: regions), "an unregistered store")
        XCTAssertNil(NodeScope.region("north").refusal(toServe: .region("north"), regions: regions))
        XCTAssertNotNil(NodeScope.region("north").refusal(toServe: .region("south"), regions: regions))
        XCTAssertNotNil(NodeScope.region("north").refusal(toServe: .all, regions: regions))
        XCTAssertNil(NodeScope.all.refusal(toServe: .region("south"), regions: regions))
        XCTAssertNil(NodeScope.all.refusal(toServe: .store("S02"), regions: regions))
        XCTAssertNotNil(NodeScope.all.refusal(toServe: .store("S99"), regions: regions))
        XCTAssertNotNil(NodeScope.store("S01").refusal(toServe: .store("S01"), regions: regions))
    }

    func testRowsBelongToTheirStoreAndPromotionsToBothStores() throws {
        let (replica, _) = try temporaryReplica()
        try addStore(replica, "S01", region: "north")
        try addStore(replica, "S02", region: "south")
        let directory = StoreDirectory(reader: try replica.makeReader())
        let s01 = RetailRowScope(scope: .store("S01"), directory: nil)
        let north = try RetailRowScope(scope: .region("north"), directory: directory).forBatch(nil)
        let south = try RetailRowScope(scope: .region("south"), directory: directory).forBatch(nil)

        let (lead, leadColumns) = try row(RetailSchema.leads, "L1", ["store": .text("S01"), "stage": .text("demo")])
        XCTAssertTrue(s01.admits(lead, of: RetailSchema.leads.name, columns: leadColumns))
        XCTAssertTrue(north.admits(lead, of: RetailSchema.leads.name, columns: leadColumns))
        XCTAssertFalse(south.admits(lead, of: RetailSchema.leads.name, columns: leadColumns))

        let (promotion, promotionColumns) = try row(RetailSchema.promotions, "P1",
                                                    ["target_store": .text("S02"), "source_store": .text("S01"), "sku": .text("K1")])
        for scope in [s01, north, south] {
            XCTAssertTrue(scope.admits(promotion, of: RetailSchema.promotions.name, columns: promotionColumns),
                          "a suggestion concerns the store it is for and the store that raised it")
        }
        XCTAssertFalse(RetailRowScope(scope: .store("S03"), directory: nil)
            .admits(promotion, of: RetailSchema.promotions.name, columns: promotionColumns))

        let (storeRow, storeColumns) = try row(RetailSchema.stores, "S02", ["region": .text("south")])
        XCTAssertTrue(south.admits(storeRow, of: RetailSchema.stores.name, columns: storeColumns))
        XCTAssertFalse(north.admits(storeRow, of: RetailSchema.stores.name, columns: storeColumns))
        XCTAssertFalse(s01.admits(storeRow, of: RetailSchema.stores.name, columns: storeColumns))

        let (orphan, orphanColumns) = try row(RetailSchema.sales, "X1", ["sku": .text("K1")])
        XCTAssertFalse(north.admits(orphan, of: RetailSchema.sales.name, columns: orphanColumns), "a row of no store")
        XCTAssertTrue(UnlimitedScope().admits(orphan, of: RetailSchema.sales.name, columns: orphanColumns))
    }

    func testTheDirectoryFollowsTheStoresTableAndABatchMayRegisterAStore() throws {
        let (replica, _) = try temporaryReplica()
        try addStore(replica, "S01", region: "north")
        let directory = StoreDirectory(reader: try replica.makeReader())
        XCTAssertEqual(try directory.regions(), ["S01": "north"])
        try addStore(replica, "S03", region: "north")
        XCTAssertEqual(try directory.regions(), ["S01": "north", "S03": "north"], "a new store is seen without a restart")

        let (sale, saleColumns) = try row(RetailSchema.sales, "X1", ["store": .text("S04")])
        let (storeRow, storeColumns) = try row(RetailSchema.stores, "S04", ["region": .text("north")])
        let incoming = Changeset(source: ReplicaID.random(), fromSequence: 0, toSequence: 2, tables: [
            TableChanges(table: RetailSchema.sales.name, columns: saleColumns, rows: [sale]),
            TableChanges(table: RetailSchema.stores.name, columns: storeColumns, rows: [storeRow]),
        ])
        let north = RetailRowScope(scope: .region("north"), directory: directory)
        XCTAssertFalse(try north.forBatch(nil).admits(sale, of: RetailSchema.sales.name, columns: saleColumns))
        XCTAssertTrue(try north.forBatch(incoming).admits(sale, of: RetailSchema.sales.name, columns: saleColumns))
    }

    /// Pushes are judged so that no honest peer wedges and no peer moves another's stores.
    func testPushedRowsProtectTheDirectoryWithoutWedgingARelay() throws {
        let (replica, _) = try temporaryReplica()
        try addStore(replica, "N1", region: "north")
        try addStore(replica, "S1", region: "south")
        let directory = StoreDirectory(reader: try replica.makeReader())
        let emptyPush = Changeset(source: ReplicaID.random(), fromSequence: 0, toSequence: 1, tables: [])
        let north = RetailRowScope(scope: .region("north"), directory: directory)
        let northIn = try north.forBatch(emptyPush)
        let northOut = try north.forBatch(nil)
        let terminalIn = try RetailRowScope(scope: .store("N1"), directory: nil).forBatch(emptyPush)
        let terminalOut = try RetailRowScope(scope: .store("N1"), directory: nil).forBatch(nil)

        let (ownStore, storeColumns) = try row(RetailSchema.stores, "N1", ["region": .text("north")])
        XCTAssertFalse(terminalIn.admits(ownStore, of: RetailSchema.stores.name, columns: storeColumns), "terminals never push reference data")
        XCTAssertTrue(terminalOut.admits(ownStore, of: RetailSchema.stores.name, columns: storeColumns), "but receive their store's row")

        let (newStore, _) = try row(RetailSchema.stores, "N9", ["region": .text("north")])
        XCTAssertTrue(northIn.admits(newStore, of: RetailSchema.stores.name, columns: storeColumns), "a region registers a new store")
        let (stolen, _) = try row(RetailSchema.stores, "S1", ["region": .text("north")])
        XCTAssertFalse(northIn.admits(stolen, of: RetailSchema.stores.name, columns: storeColumns), "but never takes another region's")

        let (unknownSale, saleColumns) = try row(RetailSchema.sales, "X1", ["store": .text("N9")])
        XCTAssertTrue(northIn.admits(unknownSale, of: RetailSchema.sales.name, columns: saleColumns),
                      "rows of a store registered below but not yet here are taken")
        XCTAssertFalse(northOut.admits(unknownSale, of: RetailSchema.sales.name, columns: saleColumns),
                       "and sent to no region until the store is registered in it")
        let (foreignSale, _) = try row(RetailSchema.sales, "X2", ["store": .text("S1")])
        XCTAssertFalse(northIn.admits(foreignSale, of: RetailSchema.sales.name, columns: saleColumns))
        let (orphan, _) = try row(RetailSchema.sales, "X3", ["sku": .text("K1")])
        XCTAssertFalse(northIn.admits(orphan, of: RetailSchema.sales.name, columns: saleColumns), "a row of no store")
    }

    func testAStoreDoesNotMoveBetweenRegions() throws {
        let (replica, _) = try temporaryReplica()
        try ReferenceData.setStore(id: "N1", region: "north", latitude: 40, longitude: 116, name: nil, in: replica)
        try ReferenceData.setStore(id: "N1", region: "north", latitude: 40.5, longitude: 116, name: "moved across the street", in: replica)
        let before = try replica.canonicalDump()
        XCTAssertThrowsError(try ReferenceData.setStore(id: "N1", region: "south", latitude: 22, longitude: 113, name: nil, in: replica))
        XCTAssertEqual(try replica.canonicalDump(), before, "the refused change wrote nothing")
    }
}
