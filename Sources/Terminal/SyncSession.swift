import Foundation
import Logging
import Net
import SyncEngine
import Wire

/// One connection's worth of syncing with a hub (PROTOCOL.md §7): handshake, push everything
/// the hub has not acknowledged, pull everything new, and, when live, keep doing both as local
/// writes commit and the hub sends NOTIFY. Runs on the caller's thread; waits only on its inbox.
///
/// **Every local write is judged before anything pulled can overwrite it.** A pulled batch is
/// applied only when the hub has acknowledged every local write (the push is drained, looked
/// at afresh in the file, so writes by other processes count too): a pull is sent only then,
/// and a batch that arrives while local writes are unacknowledged (a live session's write
/// committed meanwhile) is held, not applied, until they are. Otherwise a later version from
/// a colleague would overwrite a write the hub's central rules never saw (a `won` with a
/// backlog behind it, erased by a `lost` pulled between two of its batches), and an ack of
/// the rest would push the colleague's value as ours. A held batch dies with its connection:
/// its cursor was not stored, so the next session pulls it again, after pushing.
/// Limit: a write committed by another process between the last look at the log and the
/// apply's transaction is not covered (milliseconds); closing that needs the apply itself to
/// refuse when the log moved past the sequence looked at (an engine seam).
final class SyncSession {
    private let replica: Replica
    private let options: SyncOptions
    private let logger: Logger
    private let inbox: EventInbox
    private var connection: FramedConnection?

    private var hub = ReplicaID.none
    private var report = SyncReport()
    private var maxCells: UInt32
    /// The largest payload the hub accepts (HELLO_ACK).
    private var maxFrameBytes = WireFormat.maxFrameBytes
    private var idleTimeout: Duration = .seconds(120)
    /// The end of our last PUSH (the hub's cursor once acknowledged).
    private var pushSent: UInt64 = 0
    /// How far our log has been read for pushing (past ranges with nothing of ours).
    private var pushScan: UInt64 = 0
    private var pushesInFlight: [UInt64] = []
    private var pushDone = false
    private var pullOutstanding = false
    /// The cursor the outstanding PULL asked from.
    private var pullFrom: UInt64 = 0
    /// A NOTIFY came while a pull was on its way: pull again once it is answered.
    private var notifiedDuringPull = false
    /// A pull is due but waits until the hub has acknowledged every local write.
    private var pullWanted = false
    /// A pulled batch that arrived while local writes were unacknowledged, applied once they are.
    private var heldBatch: PullBatch?
    private var caughtUp = false
    private var lastSend = ContinuousClock.now
    private var lastReceive = ContinuousClock.now
    private var pingNonce: UInt64 = 0
    /// Called once the handshake succeeded (the live agent resets its backoff there).
    var onReady: ((ReplicaID) -> Void)?
    /// Called whenever the session is caught up both ways (tests and the CLI watch this).
    var onSynced: ((SyncReport) -> Void)?

    init(replica: Replica, options: SyncOptions, inbox: EventInbox, logger: Logger) {
        self.replica = replica
        self.options = options
        self.inbox = inbox
        self.logger = logger
        self.maxCells = options.maxBatchCells
    }

    private func failure(_ kind: SyncFailure.Kind, _ message: String, code: ErrorCode? = nil, retryAfter: UInt32? = nil) -> SyncFailure {
        SyncFailure(kind: kind, code: code, message: message, retryAfterMilliseconds: retryAfter)
    }

    /// A local failure caused by `error`, with its cause when known (disk full, busy, permission).
    private func localFailure(_ message: String, _ error: any Error) -> SyncFailure {
        SyncFailure(kind: .local, message: message, localCause: SyncFailure.localCause(of: error))
    }

    /// Runs the session to its end: caught up (one-shot), `.stop` (live), or a failure.
    func run(live: Bool) throws(SyncFailure) -> SyncReport {
        report.hub = options.hub.description
        defer { connection?.close(flushing: true) }
        try connect()
        try handshake()
        try fillPushWindow()
        try pullWhenDrained(live: live)
        while true {
            if !live && pushDone && pushesInFlight.isEmpty && caughtUp && !pullOutstanding && heldBatch == nil {
                return report
            }
            let event = inbox.next(before: nextDeadline(live: live))
            guard let event else {
                try onTimer(live: live)
                continue
            }
            switch event {
            case .stop:
                return report
            case .localWrite:
                pushDone = false
                try fillPushWindow()
                try pullWhenDrained(live: live)
            case .closed(let id, let reason):
                guard id == connection?.id else { continue }
                throw failure(.disconnected, "the hub closed the connection (\(reason))")
            case .message(let id, let message):
                guard id == connection?.id else { continue }
                lastReceive = .now
                try handle(message, live: live)
            }
        }
    }

    // MARK: Steps

    private func connect() throws(SyncFailure) {
        var limits = ConnectionLimits()
        limits.idleTimeout = nil
        do {
            let connection = try Dialer.connect(to: options.hub, timeout: options.connectTimeout, limits: limits, logger: logger)
            let inbox = self.inbox
            let id = connection.id
            connection.start(onMessage: { inbox.post(.message(id, $0)) }, onClose: { inbox.post(.closed(id, $0)) })
            self.connection = connection
        } catch {
            throw failure(.connect, "cannot connect to \(options.hub): \(error)")
        }
    }

    private func send(_ message: Message) throws(SyncFailure) {
        let frame: [UInt8]
        do {
            frame = try FrameEncoder().encode(message)
        } catch {
            throw failure(.local, "cannot encode \(message.type): \(error)")
        }
        try send(frame: frame)
    }

    /// Sends frames already encoded (a PUSH is encoded first to check it fits the hub's cap).
    private func send(frame: [UInt8]) throws(SyncFailure) {
        guard let connection else { throw failure(.disconnected, "the connection to the hub is closed") }
        guard connection.send(encodedFrames: frame) else {
            // The hub may have sent ERROR and closed while we were still sending (SERVER_BUSY
            // before our HELLO, OUT_OF_SCOPE while our next PUSH went out): its code, not
            // "closed", is what the caller must see, to stop (permanent) or wait (retry-after).
            if let error = inbox.takeError(from: connection.id) { throw refused(error) }
            throw failure(.disconnected, "the connection to the hub is closed")
        }
        lastSend = .now
    }

    private func handshake() throws(SyncFailure) {
        try send(.hello(Hello(
            protocolVersions: WireFormat.supportedProtocolVersions.sorted(by: >), replica: replica.id, role: options.role,
            scope: options.scope, clock: replica.clock.now(), credentials: options.credentials, lease: try storedLease())))
        let deadline = Date().addingTimeInterval(seconds(options.replyTimeout))
        var localWrites = false
        defer { if localWrites { inbox.post(.localWrite) } }
        while true {
        guard let event = inbox.next(before: deadline) else { throw failure(.timeout, "no answer to HELLO from \(options.hub)") }
        switch event {
        case .message(let id, _) where id != connection?.id:
            continue
        case .closed(let id, _) where id != connection?.id:
            continue
        case .message(_, .helloAck(let ack)):
            // The hub holds more of our changes than we ever wrote: we are a restored backup or
            // a clone that fell behind. Pushing from there would skip our writes; stop instead
            // (PROTOCOL.md §7.3), before storing anything the hub sent.
            let latest = replica.latestSequence
            guard ack.pushCursor <= latest else {
                throw failure(.replicaConflict, "the hub \(options.hub) holds changes of replica \(replica.id) up to sequence \(ack.pushCursor), "
                              + "but this database has written only up to \(latest): it is a restored backup or a clone of that replica. "
                              + "Run `storesync reidentify --db FILE` on it (it keeps its data and gets a new replica id), then sync again",
                              code: .replicaConflict)
            }
            // The new lease is durable before we send anything else: the hub takes our next
            // message as proof that we hold it (§7.3).
            if ack.protocolVersion >= 2, let lease = ack.lease { try storeLease(lease, server: ack.replica) }
            if let drift = ack.maxClockDriftMilliseconds { hubClockDrift = UInt64(drift) }
            hub = ack.replica
            report.hubReplica = ack.replica
            maxCells = min(options.maxBatchCells, ack.limits.maxBatchCells)
            maxFrameBytes = min(WireFormat.maxFrameBytes, Int(ack.limits.maxFrameBytes))
            pushRowLimit = rowBudget
            idleTimeout = .milliseconds(Int(ack.limits.idleTimeoutMilliseconds))
            pushSent = ack.pushCursor
            pushScan = ack.pushCursor
            report.pushCursor = ack.pushCursor
            try adoptHubClockIfSkewed(ack.clock)
            onReady?(hub)
            return
        case .message(_, .error(let error)):
            throw refused(error)
        case .message(_, let other):
            throw failure(.protocolViolation, "expected HELLO_ACK, got \(other.type)")
        case .closed(_, let reason):
            throw failure(.disconnected, "the hub closed the connection during the handshake (\(reason))")
        case .stop:
            throw failure(.local, "stopped")
        case .localWrite:
            // Pushed right after the handshake anyway; remember to look again then.
            localWrites = true
        }
        }
    }

    /// The allowed drift the hub announced (HELLO_ACK version 2), else our own bound.
    private var hubClockDrift: UInt64?

    /// The lease to present (`StoredLease`); empty when we hold none.
    private func storedLease() throws(SyncFailure) -> [UInt8] {
        do {
            return try StoredLease(replica: replica, hub: options.hub).presented()
        } catch {
            throw failure(.local, "cannot read the stored lease: \(error)")
        }
    }

    private func storeLease(_ lease: [UInt8], server: ReplicaID) throws(SyncFailure) {
        do {
            try StoredLease(replica: replica, hub: options.hub).store(lease, server: server)
        } catch {
            throw failure(.local, "cannot store the hub's lease: \(error)")
        }
    }

    /// When our wall clock and the hub's differ by more than the allowed drift, the hub's wins:
    /// our clock takes it as a reference and our future-stamped writes get fresh versions.
    private func adoptHubClockIfSkewed(_ hubClock: HLCTimestamp) throws(SyncFailure) {
        let ours = replica.clock.wallMilliseconds()
        let theirs = hubClock.milliseconds
        let difference = ours > theirs ? ours - theirs : theirs - ours
        guard difference > (hubClockDrift ?? replica.clock.maxForwardDriftMilliseconds) else { return }
        do {
            report.restampedRows += try replica.rebaseClock(referenceMilliseconds: theirs)
            logger.warning("adopted the hub's clock", [("skew_ms", "\(Int64(bitPattern: ours &- theirs))"),
                                                       ("restamped_rows", "\(report.restampedRows)")])
        } catch {
            throw failure(.local, "cannot correct the clock: \(error)")
        }
    }

    private var rowBudget: Int { max(1, Int(maxCells) / max(1, options.widestTableColumns)) }

    /// Rows per PUSH: the cell budget's rows, lowered for the session whenever a batch of big rows
    /// would not fit in one frame of the hub's `max_frame_bytes` (PROTOCOL.md §2: split, never
    /// send a frame the receiver must refuse; the hub used to refuse it with TOO_LARGE, and the
    /// terminal sent it again at every retry).
    private var pushRowLimit = 1

    /// Sends PUSHes until the window is full or nothing of ours is left. Ranges of our log that
    /// hold none of our own writes (rows merged from the hub) are skipped, not sent empty: the
    /// next PUSH starts where the hub's cursor is and covers the skipped range too.
    private func fillPushWindow() throws(SyncFailure) {
        while !pushDone && pushesInFlight.count < max(1, options.pushWindow) {
            let batch: ChangeBatch
            do {
                // A leaf pushes the rows it wrote to; a relay (a regional hub) pushes every row the
                // upstream did not write itself, which includes rows of other nodes below it.
                batch = try replica.nextBatch(since: pushScan, limit: pushRowLimit,
                                              excluding: options.pushOnlyLocalWrites ? nil : hub,
                                              onlyLocalWrites: options.pushOnlyLocalWrites)
            } catch {
                throw localFailure("cannot read local changes: \(error)", error)
            }
            guard batch.changeset.toSequence > pushScan else {
                pushDone = true
                return
            }
            if batch.changeset.isEmpty {
                pushScan = batch.changeset.toSequence
                if !batch.more { pushDone = true }
                continue
            }
            var changeset = batch.changeset
            changeset.fromSequence = pushSent
            let frame: [UInt8]
            do {
                frame = try FrameEncoder(maxFrameBytes: maxFrameBytes).encode(.push(changeset))
            } catch {
                guard case .tooLarge(_, let size, let maximum) = error, changeset.rowCount > 1 else {
                    throw failure(.local, "cannot push rows from sequence \(pushScan): \(error)")
                }
                // As many rows as the cap holds at this batch's size per row, with a margin.
                let rows = changeset.rowCount
                pushRowLimit = max(1, min(rows / 2, Int(Double(rows) * Double(maximum) / Double(max(1, size)) * 0.9)))
                continue  // the same rows again, in smaller batches
            }
            try send(frame: frame)
            pushScan = changeset.toSequence
            pushesInFlight.append(changeset.toSequence)
            pushSent = changeset.toSequence
            report.pushedBatches += 1
            report.pushedRows += changeset.rowCount
        }
    }

    /// True when the hub has acknowledged every local write the file holds now (read afresh:
    /// another process may have written since the last look), sending what is new otherwise.
    private func pushDrained() throws(SyncFailure) -> Bool {
        if pushesInFlight.isEmpty {
            pushDone = false
            try fillPushWindow()
        }
        return pushDone && pushesInFlight.isEmpty
    }

    /// Applies a held batch or starts a wanted pull, once every local write is acknowledged.
    private func pullWhenDrained(live: Bool) throws(SyncFailure) {
        guard heldBatch != nil || pullWanted || (!caughtUp && !pullOutstanding) else { return }
        guard try pushDrained() else {
            if heldBatch == nil && !pullOutstanding { pullWanted = true }
            return
        }
        if let batch = heldBatch {
            heldBatch = nil
            try applyPulled(batch, live: live)
        } else if !pullOutstanding {
            pullWanted = false
            try startPull(live: live)
        }
    }

    private func startPull(live: Bool) throws(SyncFailure) {
        guard !pullOutstanding else { return }
        let cursor: UInt64
        do {
            cursor = try replica.cursor(for: hub).received
        } catch {
            throw localFailure("cannot read the pull cursor: \(error)", error)
        }
        try send(.pull(Pull(fromSequence: cursor, maxCells: maxCells, live: live)))
        pullFrom = cursor
        pullOutstanding = true
        caughtUp = false
    }

    private func handle(_ message: Message, live: Bool) throws(SyncFailure) {
        switch message {
        case .pushAck(let sequence):
            guard let first = pushesInFlight.first, first == sequence else {
                throw failure(.protocolViolation, "PUSH_ACK \(sequence) does not answer the oldest push")
            }
            pushesInFlight.removeFirst()
            do {
                try replica.acknowledge(peer: hub, upTo: sequence)
            } catch {
                throw localFailure("cannot record the acknowledgement: \(error)", error)
            }
            report.pushCursor = sequence
            try fillPushWindow()
            try pullWhenDrained(live: live)
            reportIfSynced()
        case .pullBatch(let batch):
            guard pullOutstanding, batch.changeset.source == hub else {
                throw failure(.protocolViolation, "PULL_BATCH that answers no pull")
            }
            // A batch must start at our cursor and, when more follows, move it (PROTOCOL.md
            // §5.4). Anything else would not advance the cursor the engine stores, and we would
            // pull the same batch again and again, forever, instead of failing.
            guard batch.changeset.fromSequence == pullFrom, !batch.more || batch.changeset.toSequence > pullFrom else {
                throw failure(.protocolViolation, "PULL_BATCH from \(batch.changeset.fromSequence) to \(batch.changeset.toSequence) "
                              + "(more: \(batch.more)) does not continue the pull from \(pullFrom)")
            }
            pullOutstanding = false
            // Nothing pulled is applied over a local write the hub has not acknowledged.
            guard try pushDrained() else {
                heldBatch = batch
                return
            }
            try applyPulled(batch, live: live)
        case .notify:
            if pullOutstanding || heldBatch != nil {
                notifiedDuringPull = true
            } else {
                pullWanted = true
                try pullWhenDrained(live: live)
            }
        case .ping(let nonce):
            try send(.pong(nonce: nonce))
        case .pong:
            break
        case .error(let error):
            throw refused(error)
        default:
            throw failure(.protocolViolation, "unexpected \(message.type) from the hub")
        }
    }

    /// Applies a pulled batch (every local write is acknowledged) and pulls on if more waits.
    private func applyPulled(_ batch: PullBatch, live: Bool) throws(SyncFailure) {
        do {
            let result = try replica.apply(batch.changeset)
            report.changedRows += result.changedRows.count
        } catch {
            // Clock skew cannot happen here: the handshake aligned our clock with the hub's,
            // and the hub refuses versions beyond its own drift bound.
            throw localFailure("cannot apply the hub's changes: \(error)", error)
        }
        report.pulledBatches += 1
        report.pulledRows += batch.changeset.rowCount
        report.pullCursor = batch.changeset.toSequence
        if batch.more || notifiedDuringPull {
            notifiedDuringPull = false
            try startPull(live: live)
        } else {
            caughtUp = true
            reportIfSynced()
        }
    }

    private func reportIfSynced() {
        if caughtUp && pushesInFlight.isEmpty && pushDone && !pullOutstanding && heldBatch == nil { onSynced?(report) }
    }

    private func refused(_ error: ErrorMessage) -> SyncFailure {
        if error.code == .clockSkew, let clock = error.serverClock {
            // Our pushed versions are in the hub's future: correct our clock so the retry is accepted.
            do {
                report.restampedRows += try replica.rebaseClock(referenceMilliseconds: clock.milliseconds)
            } catch {
                return failure(.local, "cannot correct the clock: \(error)")
            }
        }
        let kind: SyncFailure.Kind = error.code == .replicaConflict ? .replicaConflict : .refused
        return failure(kind, error.message, code: error.code, retryAfter: error.retryAfterMilliseconds)
    }

    // MARK: Time

    private func nextDeadline(live: Bool) -> Date {
        let waiting = pullOutstanding || !pushesInFlight.isEmpty
        var wait = waiting ? options.replyTimeout : .seconds(3600)
        if live { wait = min(wait, idleTimeout / 3) }
        let elapsed = ContinuousClock.now - (waiting ? lastReceive : lastSend)
        let remaining = wait - elapsed
        return Date().addingTimeInterval(max(0.001, seconds(remaining)))
    }

    private func onTimer(live: Bool) throws(SyncFailure) {
        let now = ContinuousClock.now
        if (pullOutstanding || !pushesInFlight.isEmpty) && now - lastReceive >= options.replyTimeout {
            throw failure(.timeout, "the hub did not answer within \(options.replyTimeout)")
        }
        if live && now - lastSend >= idleTimeout / 3 {
            pingNonce += 1
            try send(.ping(nonce: pingNonce))
        }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
