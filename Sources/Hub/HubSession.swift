import Dispatch
import Logging
import Net
import SyncEngine
import Synchronization
import Wire

/// One client's session on the hub: the protocol's server-side state machine (PROTOCOL.md §7.1).
///
/// Messages arrive on the connection's queue one at a time; push answers come back from the
/// merge queue and pull answers from a reader queue, so the state sits behind a mutex. A
/// session never blocks its connection's queue on the database.
final class HubSession: Sendable {
    enum Phase: Sendable, Equatable {
        case awaitingHello
        case ready(peer: ReplicaID, role: Role, scope: String)
        case closed
    }

    private struct State {
        var phase: Phase = .awaitingHello
        var pullOutstanding = false
        /// Live: notify when the hub's latest sequence passes `liveCursor`; once until the next pull.
        var live = false
        var liveCursor: UInt64 = 0
        var notified = false
        var pushesInFlight = 0
        /// Rows per PULL_BATCH found to fit a frame (lowered when big rows did not).
        var pullRowLimit = Int.max
        /// What the peer may see and push, granted at the handshake.
        var scope: any RowScope = UnlimitedScope()
    }

    let connection: FramedConnection
    let openedAt: ContinuousClock.Instant
    private let hub: HubContext
    private let state = Mutex(State())
    private let logger: Logger

    init(connection: FramedConnection, hub: HubContext) {
        self.connection = connection
        self.hub = hub
        self.openedAt = .now
        self.logger = hub.logger
    }

    var phase: Phase { state.withLock { $0.phase } }

    func handle(_ message: Message) {
        switch (phase, message) {
        case (.closed, _):
            return
        case (.awaitingHello, .hello(let hello)):
            handshake(hello)
        case (.awaitingHello, _):
            fail(.unexpectedMessage, "the first message of a session must be HELLO")
        case (.ready(let peer, _, _), .push(let changeset)):
            push(changeset, from: peer)
        case (.ready(let peer, _, _), .pull(let pull)):
            self.pull(pull, for: peer)
        case (.ready, .ping(let nonce)):
            connection.send(.pong(nonce: nonce))
        case (.ready, .pong):
            return
        case (.ready(_, let role, let scope), .viewRequest(let request)):
            view(request, role: role, scope: scope)
        case (.ready, .error(let error)):
            logger.info("client reported an error", [("session", "\(connection.id)"), ("code", "\(error.code.rawValue)")])
            close()
        case (.ready, _):
            fail(.unexpectedMessage, "\(message.type) is not allowed from a client in this state")
        }
    }

    // MARK: Handshake

    private func handshake(_ hello: Hello) {
        let common = Set(hello.protocolVersions).intersection(WireFormat.supportedProtocolVersions)
        guard let version = common.max() else {
            let ours = WireFormat.supportedProtocolVersions.map(String.init).joined(separator: ", ")
            fail(.unsupportedVersion, "no protocol version in common; this hub speaks \(ours)")
            return
        }
        let granted: any RowScope
        do {
            granted = try hub.scopes.grant(role: hello.role, scope: hello.scope, peer: hello.replica)
        } catch let refusal as ScopeRefusal {
            fail(.outOfScope, refusal.reason)
            return
        } catch {
            logger.error("scope check failed", [("session", "\(connection.id)"), ("error", "\(error)")])
            fail(.internal, "the hub could not check the scope; retry later", retryAfter: 1_000)
            return
        }
        let pushCursor: UInt64
        do {
            pushCursor = try hub.replica.cursor(for: hello.replica).received
        } catch {
            fail(.internal, "cannot read the session's cursor", retryAfter: 1_000)
            return
        }
        state.withLock {
            $0.phase = .ready(peer: hello.replica, role: hello.role, scope: hello.scope)
            $0.scope = granted
        }
        let skew = Int64(bitPattern: hello.clock.milliseconds) - Int64(bitPattern: hub.replica.clock.wallMilliseconds())
        logger.info("session ready", [("session", "\(connection.id)"), ("peer", "\(hello.replica)"),
                                      ("role", "\(hello.role)"), ("clock_skew_ms", "\(skew)")])
        connection.send(.helloAck(HelloAck(
            protocolVersion: version, replica: hub.replica.id, clock: hub.replica.clock.now(),
            pushCursor: pushCursor, latestSequence: hub.replica.latestSequence,
            limits: SessionLimits(
                maxFrameBytes: UInt32(hub.configuration.maxFrameBytes),
                maxBatchCells: hub.configuration.maxBatchCells,
                idleTimeoutMilliseconds: Self.milliseconds(hub.configuration.idleTimeout)))))
    }

    /// Whole milliseconds of `duration`, clamped to the field: a timeout below one second must
    /// not be announced as 0 (a client pinging at a third of it would then ping without pause).
    static func milliseconds(_ duration: Duration) -> UInt32 {
        let (seconds, attoseconds) = duration.components
        return UInt32(clamping: max(0, seconds).multipliedReportingOverflow(by: 1000).partialValue + max(0, attoseconds) / 1_000_000_000_000_000)
    }

    // MARK: Push

    private func push(_ changeset: Changeset, from peer: ReplicaID) {
        guard changeset.source == peer else {
            fail(.outOfScope, "a session pushes only its own replica's changes")
            return
        }
        guard changeset.cellCount <= Int(hub.configuration.maxBatchCells) else {
            fail(.tooLarge, "push of \(changeset.cellCount) cells is above the limit of \(hub.configuration.maxBatchCells)")
            return
        }
        do throws(PushRefusal) {  // the application's schema: reads no database, and nothing refused reaches the merge
            try hub.configuration.pushValidator?.validate(changeset)
        } catch {
            fail(.invalidValue, error.reason)
            return
        }
        do {
            if let outside = try outOfScopeRow(in: changeset) {
                fail(.outOfScope, outside)
                return
            }
        } catch {
            logger.error("scope check failed", [("session", "\(connection.id)"), ("error", "\(error)")])
            fail(.internal, "the hub could not check the batch's scope; retry later", retryAfter: 1_000)
            return
        }
        state.withLock { $0.pushesInFlight += 1 }
        let accepted = hub.mergeQueue.submit(changeset) { [self] outcome in
            state.withLock { $0.pushesInFlight -= 1 }
            switch outcome {
            case .success:
                logger.debug("push applied", [("session", "\(connection.id)"), ("to", "\(changeset.toSequence)"),
                                              ("rows", "\(changeset.rowCount)")])
                connection.send(.pushAck(acknowledgedSequence: changeset.toSequence))
            case .failure(let error):
                if case .clockSkew = error {
                    fail(.clockSkew, "\(error)", serverClock: hub.replica.clock.now())
                } else if case .invalidChangeset(let reason) = error, reason.hasPrefix("push starts at") {
                    fail(.badCursor, reason)
                } else if error.wireCode == .internal {
                    logger.error("merge failed", [("session", "\(connection.id)"), ("error", "\(error)")])
                    fail(.internal, "the hub could not store the batch; retry later", retryAfter: 2_000)
                } else {
                    fail(error.wireCode, "\(error)")
                }
            }
        }
        if !accepted {
            state.withLock { $0.pushesInFlight -= 1 }
            fail(.serverBusy, "the hub is shutting down", retryAfter: 5_000)
        }
    }

    /// The whole batch is refused when one row is outside the session's scope (nothing of it is
    /// applied, PROTOCOL.md §5.3): a peer that pushes such rows is misconfigured, and applying
    /// part of a batch would leave a cursor that covers rows never stored.
    private func outOfScopeRow(in changeset: Changeset) throws -> String? {
        let scope = try state.withLock { $0.scope }.forBatch(changeset)
        for table in changeset.tables {
            if let row = table.rows.first(where: { !scope.admits($0, of: table.table, columns: table.columns) }) {
                return "row \(row.primaryKey) of \(table.table.rawValue) is outside this session's scope"
            }
        }
        return nil
    }

    // MARK: Views

    /// Rows per VIEW_ROWS chunk: keeps frames small whatever the view's size.
    static let viewRowsPerChunk = 1_000

    /// Consolidated views span the hub's whole scope: the policy says which sessions may ask.
    private func view(_ request: ViewRequest, role: Role, scope: String) {
        guard hub.scopes.allowsViews(role: role, scope: scope) else {
            fail(.outOfScope, "this session may not ask for views")
            return
        }
        guard let views = hub.views else {
            fail(.unknownView, "this hub serves no view named \(request.view)")
            return
        }
        hub.reader(for: connection.id).queue.async { [self] in
            let answer: (columns: [String], rows: [[Value]])
            do {
                answer = try views.answer(view: request.view, parameters: request.parameters.map { ($0.name, $0.value) })
            } catch let refusal as ViewRefusal {
                fail(.unknownView, refusal.reason)
                return
            } catch {
                logger.error("view failed", [("session", "\(connection.id)"), ("error", "\(error)")])
                fail(.internal, "the hub could not compute the view; retry later", retryAfter: 1_000)
                return
            }
            var start = 0
            repeat {
                let end = min(answer.rows.count, start + Self.viewRowsPerChunk)
                connection.send(.viewRows(ViewRows(requestID: request.requestID, final: end == answer.rows.count,
                                                   columns: answer.columns, rows: Array(answer.rows[start..<end]))))
                start = end
            } while start < answer.rows.count
            logger.info("view answered", [("session", "\(connection.id)"), ("rows", "\(answer.rows.count)")])
        }
    }

    // MARK: Pull

    private func pull(_ request: Pull, for peer: ReplicaID) {
        let alreadyPulling = state.withLock { state -> Bool in
            if state.pullOutstanding { return true }
            state.pullOutstanding = true
            state.live = false
            state.notified = false
            return false
        }
        guard !alreadyPulling else {
            fail(.unexpectedMessage, "only one PULL may be outstanding")
            return
        }
        let reader = hub.reader(for: connection.id)
        let grantedScope = state.withLock { $0.scope }
        reader.queue.async { [self] in
            // A batch is cut by cells, but big rows can make it too large for one frame: then
            // the same rows are read again in halves until the answer fits (PROTOCOL.md §2:
            // split, never send a frame the receiver must refuse; such a frame used to be
            // dropped silently, leaving the client waiting for an answer that never came).
            let encoder = FrameEncoder(maxFrameBytes: hub.configuration.maxFrameBytes)
            var limit = min(hub.configuration.rows(forCells: request.maxCells), state.withLock { $0.pullRowLimit })
            var answer: (batch: ChangeBatch, frame: [UInt8])?
            while answer == nil {
                let batch: ChangeBatch
                do {
                    batch = try reader.reader.nextBatch(
                        since: request.fromSequence, limit: limit, excluding: peer, scope: try grantedScope.forBatch(nil))
                } catch {
                    logger.error("pull failed", [("session", "\(connection.id)"), ("error", "\(error)")])
                    fail(.internal, "the hub could not read its changes; retry later", retryAfter: 1_000)
                    return
                }
                do throws(WireError) {
                    answer = (batch, try encoder.encode(.pullBatch(PullBatch(more: batch.more, changeset: batch.changeset))))
                } catch {
                    guard case .tooLarge(_, let size, let maximum) = error, batch.changeset.rowCount > 1 else {
                        logger.error("pull answer does not fit a frame", [("session", "\(connection.id)"),
                                                                          ("from", "\(request.fromSequence)"), ("error", error.code.name)])
                        fail(.internal, "a row after sequence \(request.fromSequence) is larger than a frame", retryAfter: 60_000)
                        return
                    }
                    // As many rows as the cap holds at this batch's size per row, with a margin.
                    let rows = batch.changeset.rowCount
                    let fitting = Int(Double(rows) * Double(maximum) / Double(max(1, size)) * 0.9)
                    limit = max(1, min(rows / 2, fitting))
                    state.withLock { $0.pullRowLimit = limit }  // the next pulls start there
                }
            }
            guard let (batch, frame) = answer else { return }
            logger.debug("pull answered", [("session", "\(connection.id)"), ("from", "\(request.fromSequence)"),
                                           ("to", "\(batch.changeset.toSequence)"), ("rows", "\(batch.changeset.rowCount)"),
                                           ("more", "\(batch.more)"), ("live", "\(request.live)")])
            // The pull is over before its answer leaves: a client may send its next PULL the
            // moment it has the batch, and that PULL must not find this one still outstanding.
            // Sending under the lock that `liveUpdate` takes keeps a NOTIFY from overtaking the
            // PULL_BATCH it follows.
            state.withLock { state in
                state.pullOutstanding = false
                if request.live && !batch.more {
                    state.live = true
                    state.liveCursor = batch.changeset.toSequence
                }
                connection.send(encodedFrames: frame)
            }
            // A commit may have landed between the read and registering as live.
            if request.live && !batch.more { liveUpdate(latest: hub.replica.latestSequence) }
        }
    }

    /// The hub committed up to `latest`: tell a live client once, until it pulls again, if its
    /// scope holds something new (PROTOCOL.md §5.4). `committed`, when the caller read it, holds
    /// the rows of that commit: a session none of them concerns is not told (with a thousand
    /// live terminals, a store's write would otherwise send all of them pulling). Without it the
    /// session is told whenever the hub moved past its cursor.
    func liveUpdate(latest: UInt64, committed: Changeset? = nil) {
        let scope = state.withLock { state -> (any RowScope)? in
            guard state.live, !state.notified, latest > state.liveCursor else { return nil }
            return state.scope
        }
        guard let scope else { return }
        if let committed, !Self.concerns(committed, scope) { return }
        let send = state.withLock { state -> Bool in
            guard state.live, !state.notified, latest > state.liveCursor else { return false }
            state.notified = true
            return true
        }
        if send {
            logger.debug("notify", [("session", "\(connection.id)"), ("latest", "\(latest)")])
            connection.send(.notify(latestSequence: latest))
        }
    }

    /// Whether any row of `committed` lies in `scope` (when the scope cannot be checked, yes).
    private static func concerns(_ committed: Changeset, _ scope: any RowScope) -> Bool {
        guard let scope = try? scope.forBatch(nil) else { return true }
        return committed.tables.contains { table in
            table.rows.contains { scope.admits($0, of: table.table, columns: table.columns) }
        }
    }

    // MARK: Ending

    /// Sends an ERROR (PROTOCOL.md §5.7) and closes: the sender always closes after an error.
    func fail(_ code: ErrorCode, _ message: String, serverClock: HLCTimestamp? = nil, retryAfter: UInt32? = nil) {
        let wasOpen = state.withLock { state -> Bool in
            guard state.phase != .closed else { return false }
            state.phase = .closed
            return true
        }
        guard wasOpen else { return }
        logger.info("closing session with an error", [("session", "\(connection.id)"), ("code", "\(code.rawValue)")])
        connection.send(.error(ErrorMessage(code: code, message: message, serverClock: serverClock, retryAfterMilliseconds: retryAfter)))
        connection.close(flushing: true)
    }

    func close() {
        state.withLock { $0.phase = .closed }
        connection.close(flushing: true)
    }

    func connectionClosed() {
        state.withLock { $0.phase = .closed }
    }
}
