import Dispatch
import Logging
import Net
import SyncEngine
import Synchronization
import Wire

/// One client's session on the hub: the protocol's server-side state machine (PROTOCOL.md §7.1).
///
/// Messages arrive on the connection's queue one at a time; push answers come back from the
/// merge queue and pull, view and handshake work runs on a reader queue, so the state sits
/// behind a mutex. Nothing on the connection's queue touches the database: the handshake reads
/// the lease book and the push cursors from memory and the scope and latest sequence through a
/// reader; a push's scope check runs on the session's reader queue (serial, so pushes keep their
/// order); every write goes through the merge queue.
///
/// Back-pressure: beyond `maxPushesInFlight` unacknowledged pushes, `maxPushBytesInFlight`
/// bytes of them, or `maxViewsInFlight` views, the session stops reading its socket until the
/// work drains; TCP flow control then stops the client. During the handshake reading is paused
/// too, so nothing a client pipelines after HELLO is read before HELLO_ACK is out.
final class HubSession: Sendable {
    enum Phase: Sendable, Equatable {
        case awaitingHello
        /// HELLO received; scope, cursor and lease being settled off the connection's queue.
        case handshaking
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
        var pushBytesInFlight = 0
        var viewsInFlight = 0
        /// Reading is paused for back-pressure (pushes or views), or for the handshake.
        var pausedForWork = false
        /// The window, budget or view limit was reached and has not drained to half yet.
        var pausedForLoad = false
        var pausedForHandshake = false
        /// The client half-closed: close once every answer it is owed has been sent.
        var inputEnded = false
        /// Rows per PULL_BATCH found to fit a frame (lowered when big rows did not).
        var pullRowLimit = Int.max
        /// What the peer may see and push, granted at the handshake.
        var scope: any RowScope = UnlimitedScope()
        /// The lease issued in HELLO_ACK, until the client's first message confirms it stored it.
        var unconfirmedLease: [UInt8]?

        var hasWork: Bool { pushesInFlight > 0 || pullOutstanding || viewsInFlight > 0 || phase == .handshaking }
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
        case (.handshaking, _):
            // Reading is paused until HELLO_ACK; a message can only be one decoded with HELLO.
            fail(.unexpectedMessage, "nothing may follow HELLO before HELLO_ACK")
        case (.ready(let peer, _, _), .push(let changeset)):
            confirmLease(peer)
            push(changeset, from: peer)
        case (.ready(let peer, _, _), .pull(let pull)):
            confirmLease(peer)
            self.pull(pull, for: peer)
        case (.ready(let peer, _, _), .ping(let nonce)):
            confirmLease(peer)
            connection.send(.pong(nonce: nonce))
        case (.ready, .pong):
            return
        case (.ready(let peer, let role, let scope), .viewRequest(let request)):
            confirmLease(peer)
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
        // Nothing the client pipelines is read before HELLO_ACK is out.
        let proceed = state.withLock { state -> Bool in
            guard state.phase == .awaitingHello else { return false }
            state.phase = .handshaking
            state.pausedForHandshake = true
            return true
        }
        guard proceed else { return }
        updateReading()
        // Clone detection first: in memory, cheap, and it must not depend on the scope's outcome.
        let issued: LeaseBook.Record?
        switch hub.leases.admit(peer: hello.replica, presented: version >= 2 ? hello.lease : nil) {
        case .refuse(let reason):
            logger.warning("replica conflict: lease refused", [("session", "\(connection.id)"), ("peer", "\(hello.replica)")])
            // A lease that does not match means the id is held by two databases: `admit` marked
            // it shared, so from now on its pulls include rows of its own origin (the other
            // copy's writes). The mark is durable before the refusal reaches the client, which
            // then reidentifies and pushes those writes. (A version 1 HELLO refused for
            // presenting no lease is not marked: nothing says a second database exists.)
            let leases = hub.leases
            let peer = hello.replica
            if leases.isShared(peer) {
                let submitted = hub.mergeQueue.submitWrite({ database in try leases.persistShared(peer, in: database) },
                                                           completion: { [self] error in
                    if let error {
                        logger.error("cannot record a shared replica id", [("session", "\(connection.id)"), ("error", "\(error)")])
                    }
                    fail(.replicaConflict, reason)
                })
                if !submitted { fail(.replicaConflict, reason) }
            } else {
                fail(.replicaConflict, reason)
            }
            return
        case .accept(let record):
            issued = record
        }
        let reader = hub.reader(for: connection.id)
        reader.queue.async { [self] in
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
            let latest: UInt64
            do {
                latest = try hub.latestSequence(reader.reader)
            } catch {
                logger.error("cannot read the latest sequence", [("session", "\(connection.id)"), ("error", "\(error)")])
                fail(.internal, "the hub could not read its changes; retry later", retryAfter: 1_000)
                return
            }
            guard let issued else {
                finishHandshake(hello, version: version, granted: granted, latest: latest, lease: nil)
                return
            }
            // The new lease is durable before the client can store it: a hub crash in between
            // must not make the client's next (valid) lease look like a clone's.
            let leases = hub.leases
            let peer = hello.replica
            let submitted = hub.mergeQueue.submitWrite({ database in
                // The latest state, not this snapshot: writes of racing sessions of one id may
                // run in either order, and the last one must leave what memory holds.
                try leases.persist(leases.record(for: peer) ?? issued, peer: peer, in: database)
            }, completion: { [self] error in
                if let error {
                    logger.error("cannot store a lease", [("session", "\(connection.id)"), ("error", "\(error)")])
                    fail(.internal, "the hub could not record the session; retry later", retryAfter: 2_000)
                    return
                }
                finishHandshake(hello, version: version, granted: granted, latest: latest, lease: issued.current)
            })
            if !submitted { fail(.serverBusy, "the hub is shutting down", retryAfter: 5_000) }
        }
    }

    private func finishHandshake(_ hello: Hello, version: UInt16, granted: any RowScope, latest: UInt64, lease: [UInt8]?) {
        let ready = state.withLock { state -> Bool in
            guard state.phase == .handshaking else { return false }
            state.phase = .ready(peer: hello.replica, role: hello.role, scope: hello.scope)
            state.scope = granted
            state.unconfirmedLease = lease
            return true
        }
        guard ready else { return }
        // A newer session of the same replica takes over: the old one is a dead half-open
        // connection of this device, or the loser of a clone race (refused at its next HELLO).
        let previous = hub.liveByPeer.withLock { live -> HubSession? in
            defer { live[hello.replica] = self }
            return live[hello.replica]
        }
        if let previous, previous !== self {
            logger.info("a newer session of the replica takes over", [("session", "\(previous.connection.id)"), ("by", "\(connection.id)")])
            previous.fail(.serverBusy, "a newer session of this replica id took over this one", retryAfter: 1_000)
        }
        let skew = Int64(bitPattern: hello.clock.milliseconds) - Int64(bitPattern: hub.replica.clock.wallMilliseconds())
        logger.info("session ready", [("session", "\(connection.id)"), ("peer", "\(hello.replica)"), ("version", "\(version)"),
                                      ("role", "\(hello.role)"), ("clock_skew_ms", "\(skew)")])
        let drift = version >= 2 ? UInt32(clamping: hub.replica.clock.maxForwardDriftMilliseconds) : nil
        connection.send(.helloAck(HelloAck(
            protocolVersion: version, replica: hub.replica.id, clock: hub.replica.clock.now(),
            pushCursor: hub.cursors.cursor(for: hello.replica), latestSequence: latest,
            limits: SessionLimits(
                maxFrameBytes: UInt32(hub.configuration.maxFrameBytes),
                maxBatchCells: hub.configuration.maxBatchCells,
                idleTimeoutMilliseconds: Self.milliseconds(hub.configuration.idleTimeout)),
            maxClockDriftMilliseconds: drift, lease: version >= 2 ? lease : nil)))
        state.withLock { $0.pausedForHandshake = false }
        updateReading()
        closeIfDone()
    }

    /// The client's first message after HELLO_ACK proves it stored its new lease.
    private func confirmLease(_ peer: ReplicaID) {
        guard let lease = state.withLock({ state -> [UInt8]? in
            defer { state.unconfirmedLease = nil }
            return state.unconfirmedLease
        }) else { return }
        guard let record = hub.leases.confirm(peer: peer, lease: lease) else { return }
        let leases = hub.leases
        hub.mergeQueue.submitWrite({ database in try leases.persist(leases.record(for: peer) ?? record, peer: peer, in: database) },
                                   completion: { _ in })
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
        let bytes = changeset.estimatedMemoryBytes
        state.withLock { state in
            state.pushesInFlight += 1
            state.pushBytesInFlight += bytes
            let (count, total) = (state.pushesInFlight, state.pushBytesInFlight)
            hub.usage.withLock { usage in
                usage.pushesInFlight += 1
                usage.pushBytesInFlight += bytes
                usage.peakPushesInFlight = max(usage.peakPushesInFlight, usage.pushesInFlight)
                usage.peakPushBytesInFlight = max(usage.peakPushBytesInFlight, usage.pushBytesInFlight)
                usage.peakSessionPushesInFlight = max(usage.peakSessionPushesInFlight, count)
                usage.peakSessionPushBytesInFlight = max(usage.peakSessionPushBytesInFlight, total)
            }
        }
        updateReading()
        // The scope check may read the database (a store's region): on the session's reader
        // queue, which is serial, so pushes reach the merge queue in the order they came.
        hub.reader(for: connection.id).queue.async { [self] in
            // The application's schema first: pure work bounded by the batch's cap, kept off the
            // connection's queue like the scope check, and nothing refused reaches the merge.
            do throws(PushRefusal) {
                try hub.configuration.pushValidator?.validate(changeset)
            } catch {
                pushFinished(bytes)
                fail(.invalidValue, error.reason)
                return
            }
            do {
                if let outside = try outOfScopeRow(in: changeset) {
                    pushFinished(bytes)
                    fail(.outOfScope, outside)
                    return
                }
            } catch {
                logger.error("scope check failed", [("session", "\(connection.id)"), ("error", "\(error)")])
                pushFinished(bytes)
                fail(.internal, "the hub could not check the batch's scope; retry later", retryAfter: 1_000)
                return
            }
            guard phase != .closed else {
                pushFinished(bytes)
                return
            }
            let accepted = hub.mergeQueue.submit(changeset) { [self] outcome in
                // Released before the answer leaves: a client that reads its PUSH_ACK finds the
                // hub's counters already down (tests read them right after the last one).
                releasePush(bytes)
                defer {
                    updateReading()
                    closeIfDone()
                }
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
                pushFinished(bytes)
                fail(.serverBusy, "the hub is shutting down", retryAfter: 5_000)
            }
        }
    }

    /// A push was answered (or dropped): release its share of the window and budget.
    private func pushFinished(_ bytes: Int) {
        releasePush(bytes)
        updateReading()
        closeIfDone()
    }

    private func releasePush(_ bytes: Int) {
        state.withLock { state in
            state.pushesInFlight -= 1
            state.pushBytesInFlight -= bytes
        }
        hub.usage.withLock { usage in
            usage.pushesInFlight -= 1
            usage.pushBytesInFlight -= bytes
        }
    }

    /// Pauses reading while the session holds as much as it may (or is in its handshake), and
    /// resumes once below every bound again.
    private func updateReading() {
        let configuration = hub.configuration
        let change = state.withLock { state -> (pause: Bool, full: Bool)? in
            guard state.phase != .closed else { return nil }
            let window = max(1, configuration.maxPushesInFlight), budget = max(1, configuration.maxPushBytesInFlight)
            let full = state.pushesInFlight >= window || state.pushBytesInFlight >= budget
                || state.viewsInFlight >= max(1, configuration.maxViewsInFlight)
            // Hysteresis: once full, reading resumes only when the pushes are down to half the
            // window and half the budget, so the merge gets groups rather than single pushes.
            let drained = state.pushesInFlight <= window / 2 && state.pushBytesInFlight <= budget / 2
                && state.viewsInFlight < max(1, configuration.maxViewsInFlight)
            state.pausedForLoad = state.pausedForLoad ? !drained : full
            let wanted = state.pausedForLoad || state.pausedForHandshake
            guard wanted != state.pausedForWork else { return nil }
            state.pausedForWork = wanted
            return (wanted, full)
        }
        switch change?.pause {
        case true?:
            if change?.full == true { hub.usage.withLock { $0.readPauses += 1 } }
            connection.pauseReading()
        case false?:
            connection.resumeReading()
        case nil:
            break
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

    /// Consolidated views span the hub's whole scope: the policy says which sessions may ask.
    /// The answer streams: each VIEW_ROWS chunk is encoded and queued only once the previous
    /// ones have mostly left (`viewStreamLowWaterBytes`), so a client that reads slowly holds
    /// the view's rows, not every encoded chunk of them.
    private func view(_ request: ViewRequest, role: Role, scope: String) {
        guard hub.scopes.allowsViews(role: role, scope: scope) else {
            fail(.outOfScope, "this session may not ask for views")
            return
        }
        guard let views = hub.views else {
            fail(.unknownView, "this hub serves no view named \(request.view)")
            return
        }
        state.withLock { $0.viewsInFlight += 1 }
        hub.usage.withLock { $0.viewsInFlight += 1 }
        updateReading()
        hub.reader(for: connection.id).queue.async { [self] in
            let answer: (columns: [String], rows: [[Value]])
            do {
                answer = try views.answer(view: request.view, parameters: request.parameters.map { ($0.name, $0.value) })
            } catch let refusal as ViewRefusal {
                viewFinished()
                switch refusal.kind {
                case .unknownView: fail(.unknownView, refusal.reason)
                case .badParameter: fail(.badViewParameter, refusal.reason)
                }
                return
            } catch {
                logger.error("view failed", [("session", "\(connection.id)"), ("error", "\(error)")])
                viewFinished()
                fail(.internal, "the hub could not compute the view; retry later", retryAfter: 1_000)
                return
            }
            streamView(request.requestID, columns: answer.columns, rows: answer.rows, from: 0)
        }
    }

    private func streamView(_ requestID: UInt64, columns: [String], rows: [[Value]], from start: Int) {
        let chunk = max(1, hub.configuration.viewRowsPerChunk)
        let end = min(rows.count, start + chunk)
        let final = end == rows.count
        guard connection.send(.viewRows(ViewRows(requestID: requestID, final: final, columns: columns, rows: Array(rows[start..<end])))) else {
            viewFinished()
            return
        }
        if final {
            logger.info("view answered", [("session", "\(connection.id)"), ("rows", "\(rows.count)")])
            viewFinished()
            return
        }
        connection.whenOutboundDrains(below: hub.configuration.viewStreamLowWaterBytes) { [self] open in
            guard open else {
                viewFinished()
                return
            }
            streamView(requestID, columns: columns, rows: rows, from: end)
        }
    }

    private func viewFinished() {
        state.withLock { $0.viewsInFlight -= 1 }
        hub.usage.withLock { $0.viewsInFlight -= 1 }
        updateReading()
        closeIfDone()
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
            fail(.unexpectedMessage, "only one PULL may be outstanding (PROTOCOL.md §5.4)")
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
                        since: request.fromSequence, limit: limit, excluding: hub.leases.isShared(peer) ? nil : peer,
                        scope: try grantedScope.forBatch(nil))
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
            closeIfDone()
            // A commit may have landed between the read and registering as live (read through
            // this reader, not the writer's connection).
            if request.live && !batch.more, let latest = try? hub.latestSequence(reader.reader) { liveUpdate(latest: latest) }
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
        leaveLiveTable()
    }

    func close() {
        state.withLock { $0.phase = .closed }
        connection.close(flushing: true)
        leaveLiveTable()
    }

    /// The client shut down its sending side (it may still read): answer what it asked, then close.
    func inputEnded() {
        state.withLock { $0.inputEnded = true }
        closeIfDone()
    }

    /// Closes a half-closed session once nothing it asked for is still being answered.
    private func closeIfDone() {
        let done = state.withLock { state in state.inputEnded && !state.hasWork && state.phase != .closed }
        if done { close() }
    }

    func connectionClosed() {
        state.withLock { $0.phase = .closed }
        leaveLiveTable()
    }

    private func leaveLiveTable() {
        hub.liveByPeer.withLock { live in
            for (peer, session) in live where session === self { live[peer] = nil }
        }
    }
}

extension Changeset {
    /// About what this changeset takes in memory: the hub's measure for its push byte budget.
    /// Per cell a value and a version (~48 bytes) plus its payload; per row its key and header.
    var estimatedMemoryBytes: Int {
        var bytes = 64
        for table in tables {
            bytes += 64 + table.table.rawValue.utf8.count + table.columns.reduce(0) { $0 + 24 + $1.rawValue.utf8.count }
            for row in table.rows {
                bytes += 80 + row.primaryKey.utf8.count
                for cell in row.cells {
                    bytes += 48
                    switch cell.value {
                    case .text(let text): bytes += text.utf8.count
                    case .blob(let blob): bytes += blob.count
                    case .null, .integer, .real: break
                    }
                }
            }
        }
        return bytes
    }
}
