import Foundation
import Hub
import Logging
import Net
import SQLite
import SyncEngine
import Terminal
import Wire
import XCTest

enum HubTestSchema {
    static let leads = try! TableName("leads")
    static let visits = try! TableName("visits")
    static let tables: [TableSchema] = [
        try! TableSchema("leads", kind: .lastWriterWins, columns: [
            ("store", .text), ("name", .text), ("stage", .text), ("score", .integer),
        ]),
        try! TableSchema("visits", kind: .insertOnly, columns: [
            ("store", .text), ("guide", .text), ("duration_min", .integer),
        ]),
    ]
    static func column(_ name: String) -> ColumnName { try! ColumnName(name) }
}

/// A temporary directory with a hub replica served on 127.0.0.1:0 and terminals that sync with it.
final class HubFixture {
    let directory: URL
    let hubReplica: Replica
    let server: HubServer
    let logs = MemorySink()
    var logger: Logger { Logger(label: "test", minimumLevel: .debug, sink: logs) }

    init(scopes: any ScopePolicy = UnlimitedScopePolicy(), views: (any ViewProvider)? = nil, hubOptions: ReplicaOptions = ReplicaOptions(),
         configure: (inout HubConfiguration) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-hub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        hubReplica = try Replica(path: directory.appendingPathComponent("hub.sqlite").path, schema: HubTestSchema.tables, options: hubOptions)
        var configuration = HubConfiguration(listenAddress: try SocketAddress.parse("127.0.0.1:0"))
        configuration.widestTableColumns = 4
        configure(&configuration)
        server = try HubServer(replica: hubReplica, configuration: configuration, scopes: scopes, views: views,
                               logger: Logger(label: "hub", minimumLevel: .debug, sink: logs))
        server.start()
    }

    deinit {
        if ProcessInfo.processInfo.environment["STORESYNC_TEST_LOGS"] != nil {
            for record in logs.records {
                print("\(record.level) \(record.label): \(record.message) \(record.metadata.map { "\($0.0)=\($0.1)" }.joined(separator: " "))")
            }
        }
        server.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var address: SocketAddress { server.boundAddress }

    func makeTerminal(_ name: String) throws -> Replica {
        try Replica(path: directory.appendingPathComponent("\(name).sqlite").path, schema: HubTestSchema.tables)
    }

    func options(store: String = "S1") -> SyncOptions {
        var options = SyncOptions(hub: address, scope: "store:\(store)")
        options.widestTableColumns = 4
        options.replyTimeout = .seconds(10)
        return options
    }

    func sync(_ terminal: Replica) throws -> SyncReport {
        try SyncClient(replica: terminal, options: options(), logger: Logger(label: "terminal", minimumLevel: .debug, sink: logs)).syncOnce()
    }
}

/// Waits until `condition` holds, checking every few milliseconds, failing after `timeout`.
func waitUntil(timeout: TimeInterval = 10, _ message: String, file: StaticString = #filePath, line: UInt = #line,
               _ condition: () throws -> Bool) rethrows {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        // Polling a condition with a deadline; the condition is what the test waits for, not the time.
        usleep(2_000)
    }
    XCTFail("timed out waiting: \(message)", file: file, line: line)
}

/// `store:S` for a terminal of store S (of the stores in `knownStores`, when given): its rows
/// are those whose `store` column is S.
struct StoreScopePolicy: ScopePolicy {
    var knownStores: Set<String>?

    struct Rows: RowScope {
        var store: String
        func admits(_ row: RowChange, of table: TableName, columns: [ColumnName]) -> Bool {
            guard let index = columns.firstIndex(of: HubTestSchema.column("store")) else { return false }
            return row.cells.contains { $0.column == index && $0.value == .text(store) }
        }
    }

    func grant(role: Role, scope: String, peer: ReplicaID) throws -> any RowScope {
        let store = String(scope.dropFirst(6))
        guard scope.hasPrefix("store:"), knownStores.map({ $0.contains(store) }) ?? true else {
            throw ScopeRefusal("scope \(scope) is not served here")
        }
        return Rows(store: store)
    }
}
