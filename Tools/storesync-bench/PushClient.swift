import Logging
import Net
import Retail
import SyncEngine
import Terminal
import Wire

/// A terminal's push path, without the pull: HELLO, then PUSHes of its own writes read from its
/// replica in the same batches `SyncSession` sends (`nextBatch(onlyLocalWrites:)`, a 20,000-cell
/// budget, up to 4 unacknowledged), each PUSH_ACK recorded in the replica as `SyncSession` does.
///
/// The sync benchmark's target is the transfer to the hub; `SyncClient` (its `--client sync`)
/// also pulls, and each terminal's pull reads past the rows of every other store pushing at
/// the same time.
struct PushClient {
    struct Report {
        var batches = 0
        var rows = 0
        var cells = 0
        /// The last sequence the hub acknowledged.
        var acknowledged: UInt64 = 0
    }

    let replica: Replica
    let hub: SocketAddress
    let scope: String
    var maxBatchCells: UInt32 = 20_000
    var window = 4
    var timeout: Duration = .seconds(60)

    func pushAll() throws -> Report {
        let client = try BlockingFramedClient(connectingTo: hub, timeout: .seconds(5), logger: Logger.discarding)
        defer { client.close(timeout: .seconds(1)) }
        // The lease the hub gave this replica last time (`StoredLease`, as `SyncClient` keeps it):
        // a replica id coming back without it is refused as a clone (REPLICA_CONFLICT).
        let lease = StoredLease(replica: replica, hub: hub)
        try client.send(.hello(Hello(
            protocolVersions: WireFormat.supportedProtocolVersions, replica: replica.id, role: .terminal,
            scope: scope, clock: replica.clock.now(), credentials: [], lease: try lease.presented())))
        guard case .helloAck(let ack) = try receive(client) else {
            throw BenchError.protocolFailure("expected HELLO_ACK")
        }
        if let issued = ack.lease { try lease.store(issued, server: ack.replica) }
        let rowBudget = max(1, Int(min(maxBatchCells, ack.limits.maxBatchCells)) / RetailSchema.widestTableColumns)
        var report = Report()
        var scanned = ack.pushCursor
        var sent = ack.pushCursor
        var inFlight: [UInt64] = []
        var exhausted = false
        while true {
            while !exhausted && inFlight.count < window {
                let batch = try replica.nextBatch(since: scanned, limit: rowBudget, onlyLocalWrites: true)
                guard batch.changeset.toSequence > scanned else {
                    exhausted = true
                    break
                }
                scanned = batch.changeset.toSequence
                if batch.changeset.isEmpty {
                    exhausted = !batch.more
                    continue
                }
                var changeset = batch.changeset
                changeset.fromSequence = sent
                try client.send(.push(changeset))
                inFlight.append(changeset.toSequence)
                sent = changeset.toSequence
                report.batches += 1
                report.rows += changeset.rowCount
                report.cells += changeset.cellCount
            }
            guard let oldest = inFlight.first else { return report }
            switch try receive(client) {
            case .pushAck(let sequence) where sequence == oldest:
                inFlight.removeFirst()
                try replica.acknowledge(peer: ack.replica, upTo: sequence)
                report.acknowledged = sequence
            case .error(let error):
                throw BenchError.protocolFailure("the hub refused a push: \(error.code) \(error.message)")
            case let other:
                throw BenchError.protocolFailure("expected PUSH_ACK \(oldest), got \(other.type)")
            }
        }
    }

    private func receive(_ client: BlockingFramedClient) throws -> Message {
        do throws(BlockingFramedClient.Failure) {
            return try client.receive(timeout: timeout)
        } catch {
            switch error {
            case .timedOut: throw BenchError.timeout("no answer from the hub in \(timeout)")
            case .closed(let reason): throw BenchError.protocolFailure("the hub closed the connection (\(reason))")
            }
        }
    }
}
