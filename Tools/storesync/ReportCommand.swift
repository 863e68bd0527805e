import Foundation
import Logging
import Net
import Retail
import RetailHub
import SQLite
import SyncEngine
import Wire

/// `storesync report (--db PATH | --hub HOST:PORT) --view VIEW [--by region|store|guide|day]
///  [--from DATE] [--to DATE] [--format table|csv|json] [--timeout-s N]`
func runReport(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "hub", "view", "by", "from", "to", "format", "timeout-s", "log-level"])
    let format = try ReportFormat(arguments.optional("format") ?? "table")
    var parameters: [(name: String, value: String)] = []
    for name in ["by", "from", "to"] {
        if let value = arguments.optional(name) { parameters.append((name, value)) }
    }
    let query: ReportQuery
    do {
        query = try ReportQuery(view: try arguments.required("view"), parameters: parameters)
    } catch {
        throw UsageError(message: "\(error)")
    }
    let table: ViewTable
    switch (arguments.optional("db"), arguments.optional("hub")) {
    case (let path?, nil):
        let replica = try openReplica(path)
        let now = Int64(bitPattern: replica.clock.wallMilliseconds())
        table = try RetailViews.run(query, from: replica, nowMilliseconds: now)
    case (nil, let hub?):
        let address: SocketAddress
        do {
            address = try SocketAddress.parse(hub)
        } catch {
            throw UsageError(message: "--hub must be HOST:PORT, got \(hub)")
        }
        let timeout = Duration.seconds(try arguments.integer("timeout-s", default: 30, range: 1...3600))
        table = try RemoteReport(address: address, timeout: timeout, logger: try makeLogger(arguments, label: "storesync.report"))
            .fetch(query)
    default:
        throw UsageError(message: "give exactly one of --db PATH (a local replica) or --hub HOST:PORT (a running hub)")
    }
    print(format.render(table), terminator: "")
}

/// Asks a running hub for a view over the protocol: HELLO as an HQ analyst with scope `report`
/// (no data flows), one VIEW_REQUEST, VIEW_ROWS until the final chunk.
struct RemoteReport {
    var address: SocketAddress
    var timeout: Duration
    var logger: Logger

    func fetch(_ query: ReportQuery) throws -> ViewTable {
        let client: BlockingFramedClient
        do {
            client = try BlockingFramedClient(connectingTo: address, timeout: timeout, logger: logger)
        } catch {
            throw CommandError("cannot connect to \(address): \(error)", kind: .unreachable)
        }
        defer { client.close() }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        try send(client, .hello(Hello(protocolVersions: Array(WireFormat.supportedProtocolVersions), replica: ReplicaID.random(),
                                      role: .hq, scope: ReportScope.name, clock: HLCTimestamp(milliseconds: now, counter: 0),
                                      credentials: [])))
        guard case .helloAck = try receive(client) else { throw CommandError("\(address) did not answer HELLO") }
        try send(client, .viewRequest(ViewRequest(requestID: 1, view: query.view.rawValue,
                                                  parameters: query.parameters.map { ViewParameter(name: $0.name, value: $0.value) })))
        var table = ViewTable(columns: [], rows: [])
        while true {
            guard case .viewRows(let chunk) = try receive(client), chunk.requestID == 1 else {
                throw CommandError("\(address) answered the view request with something else")
            }
            table.columns = chunk.columns
            table.rows += chunk.rows
            if chunk.final { return table }
        }
    }

    private func send(_ client: BlockingFramedClient, _ message: Message) throws {
        do {
            try client.send(message)
        } catch {
            throw CommandError("connection to \(address) lost: \(error)", kind: .disconnected)
        }
    }

    private func receive(_ client: BlockingFramedClient) throws -> Message {
        let message: Message
        do {
            message = try client.receive(timeout: timeout)
        } catch {
            throw CommandError("no answer from \(address): \(error)", kind: .timeout)
        }
        if case .error(let error) = message {
            let kind: FailureKind
            switch error.code {
            case .serverBusy: kind = .hubBusy
            case .internal: kind = .hubInternal
            case .badViewParameter: kind = .badViewParameter
            default: kind = .refused
            }
            throw CommandError("\(address) refused: \(error.message) (hub error \(error.code.rawValue))", kind: kind)
        }
        return message
    }
}
