import Dispatch
import Glibc
import Wire

// The I/O state machine. Methods named `…Locked` run with `state`'s lock held and never call
// a handler; handlers are called only from the connection's queue, with no lock held.

extension FramedConnection {
    /// Bytes read per `read` call, into a temporary buffer that lives only during the call.
    static let readChunkBytes = 32 * 1024
    /// Reads per readiness event before yielding the thread to other connections.
    static let readsPerEvent = 8

    enum FlushOutcome {
        case drained, pending, failed(NetError)
    }

    // MARK: Sending

    func enqueueLocked(_ state: inout ConnectionState, _ frames: [UInt8]) -> Bool {
        switch state.phase {
        case .created, .open: break
        case .closing, .cancelling, .closed: return false
        }
        guard state.queuedBytes + frames.count <= self.limits.maxOutboundBytes else {
            self.logger.info("closing slow consumer", [("connection", "\(self.id)"), ("queued", "\(state.queuedBytes)")])
            self.beginCloseLocked(&state, .slowConsumer, flush: false)
            return false
        }
        if state.queuedBytes > 0 {
            state.outbound.append(contentsOf: frames)
            return true
        }
        // Nothing queued: write straight from the caller's bytes and keep only the rest.
        let written: Int
        do {
            written = try Socket.sendAll(self.fd, frames, from: 0)
        } catch {
            self.beginCloseLocked(&state, .ioError(error), flush: false)
            return false
        }
        if written < frames.count {
            state.outbound = Array(frames[written...])
            state.outboundStart = 0
            self.armWriteLocked(&state)
        }
        return true
    }

    func armWriteLocked(_ state: inout ConnectionState) {
        guard !state.writeArmed, let source = state.writeSource else { return }
        source.resume()
        state.writeArmed = true
    }

    func flushLocked(_ state: inout ConnectionState) -> FlushOutcome {
        guard state.queuedBytes > 0 else { return .drained }
        do {
            state.outboundStart += try Socket.sendAll(self.fd, state.outbound, from: state.outboundStart)
        } catch {
            return .failed(error)
        }
        if state.queuedBytes == 0 {
            state.outbound = []
            state.outboundStart = 0
            return .drained
        }
        // Compact once the sent prefix outweighs the rest: linear cost overall.
        if state.outboundStart > state.queuedBytes {
            state.outbound.removeSubrange(0..<state.outboundStart)
            state.outboundStart = 0
        }
        return .pending
    }

    func writable() {
        self.state.withLock { state in
            guard state.writeArmed else { return }
            switch state.phase {
            case .open, .closing: break
            case .created, .cancelling, .closed: return
            }
            switch self.flushLocked(&state) {
            case .pending:
                self.notifyDrainWaiterLocked(&state)
                return
            case .failed(let error):
                self.beginCloseLocked(&state, .ioError(error), flush: false)
            case .drained:
                state.writeSource?.suspend()
                state.writeArmed = false
                if case .closing(let reason) = state.phase {
                    if !state.wroteShutdown {
                        Socket.shutdownWrite(self.fd)
                        state.wroteShutdown = true
                    }
                    // The peer's end of stream is already in: nothing is left to read, so the
                    // close sends FIN after everything queued, never RST.
                    if state.inputEnded { self.cancelLocked(&state, reason) }
                } else {
                    self.notifyDrainWaiterLocked(&state)
                }
            }
        }
    }

    /// Runs the drain waiter (on the queue, after the lock) once the queue is at or below its threshold.
    func notifyDrainWaiterLocked(_ state: inout ConnectionState) {
        guard !state.drainWaiters.isEmpty else { return }
        let queued = state.queuedBytes
        let ready = state.drainWaiters.filter { queued <= $0.threshold }
        guard !ready.isEmpty else { return }
        state.drainWaiters.removeAll { queued <= $0.threshold }
        self.queue.async { for waiter in ready { waiter.body(true) } }
    }

    /// Tells every drain waiter the connection is closing.
    func failDrainWaitersLocked(_ state: inout ConnectionState) {
        guard !state.drainWaiters.isEmpty else { return }
        let waiters = state.drainWaiters
        state.drainWaiters = []
        self.queue.async { for waiter in waiters { waiter.body(false) } }
    }

    /// Suspends or resumes the read source to match what the state wants: paused by the owner
    /// or after the peer's end of stream while open; reading (to discard) while closing until
    /// the peer's end of stream; always running once cancelling (a suspended source cannot
    /// deliver its cancellation).
    func updateReadInterestLocked(_ state: inout ConnectionState) {
        guard let source = state.readSource else { return }
        let wantSuspended: Bool
        switch state.phase {
        case .open: wantSuspended = state.readPaused || state.inputEnded
        case .closing: wantSuspended = state.inputEnded
        case .created, .cancelling, .closed: wantSuspended = false
        }
        if wantSuspended && !state.readSuspended {
            source.suspend()
            state.readSuspended = true
        } else if !wantSuspended && state.readSuspended {
            source.resume()
            state.readSuspended = false
        }
    }

    // MARK: Closing

    /// Starts closing for `reason` unless already closing (a later non-flushing close cuts a
    /// flushing one short, keeping the first reason).
    func beginCloseLocked(_ state: inout ConnectionState, _ reason: CloseReason, flush: Bool) {
        switch state.phase {
        case .created:
            closeDescriptor(self.fd)
            self.failDrainWaitersLocked(&state)
            state.outbound = []
            state.outboundStart = 0
            state.phase = .closed(reason)
        case .open:
            self.logger.debug("closing", [("connection", "\(self.id)"), ("reason", "\(reason)"), ("flush", "\(flush)")])
            guard flush else {
                self.cancelLocked(&state, reason)
                return
            }
            state.phase = .closing(reason)
            self.failDrainWaitersLocked(&state)
            if state.queuedBytes == 0 {
                Socket.shutdownWrite(self.fd)
                state.wroteShutdown = true
                if state.inputEnded {
                    self.cancelLocked(&state, reason)
                    return
                }
            } else {
                self.armWriteLocked(&state)
            }
            self.updateReadInterestLocked(&state)
            let timeout = self.limits.closeTimeout.clampedNanoseconds
            state.closeDeadline = monotonicNanoseconds().addingSaturating(timeout)
            self.scheduleTimerLocked(&state, at: state.closeDeadline, leeway: .milliseconds(10))
        case .closing(let first):
            if !flush { self.cancelLocked(&state, first) }
        case .cancelling, .closed:
            break
        }
    }

    /// Cancels every source; the descriptor closes when both I/O sources report cancellation.
    func cancelLocked(_ state: inout ConnectionState, _ reason: CloseReason) {
        state.phase = .cancelling(reason)
        state.pendingCancels = 2
        self.updateReadInterestLocked(&state)
        self.failDrainWaitersLocked(&state)
        // A suspended (or never resumed) source cannot deliver its cancellation.
        if !state.writeArmed {
            state.writeSource?.resume()
            state.writeArmed = true
        }
        state.readSource?.cancel()
        state.writeSource?.cancel()
        state.timer?.cancel()
    }

    /// Cancel handler of both I/O sources, on the queue. The second one closes the descriptor
    /// and calls `onClose`.
    func sourceCancelled() {
        let finished: (CloseReason, (@Sendable (CloseReason) -> Void)?)? = self.state.withLock { state in
            state.pendingCancels -= 1
            guard state.pendingCancels == 0, case .cancelling(let reason) = state.phase else { return nil }
            closeDescriptor(self.fd)
            state.phase = .closed(reason)
            state.readSource = nil
            state.writeSource = nil
            state.timer = nil
            state.outbound = []
            state.outboundStart = 0
            let onClose = state.onClose
            state.onClose = nil
            state.onMessage = nil
            state.onInputEnd = nil
            return (reason, onClose)
        }
        guard let (reason, onClose) = finished else { return }
        self.inbound.withLock { $0 = FrameDecoder(maxFrameBytes: self.limits.maxFrameBytes) }
        self.logger.debug("closed", [("connection", "\(self.id)"), ("reason", "\(reason)")])
        onClose?(reason)
    }

    // MARK: Timers

    func scheduleTimerLocked(_ state: inout ConnectionState, at deadline: UInt64, leeway: DispatchTimeInterval) {
        if let timer = state.timer {
            timer.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline), repeating: .never, leeway: leeway)
            return
        }
        let timer = DispatchSource.makeTimerSource(queue: self.queue)
        timer.setEventHandler { self.timerFired() }
        timer.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline), repeating: .never, leeway: leeway)
        state.timer = timer
        timer.resume()
    }

    /// The idle deadline moves with every read; the timer is re-armed only when it fires, so a
    /// busy connection costs nothing per read but an atomic store.
    func timerFired() {
        self.state.withLock { state in
            let now = monotonicNanoseconds()
            switch state.phase {
            case .open:
                guard let idle = self.limits.idleTimeout?.clampedNanoseconds else { return }
                // While the owner holds reading paused, silence is ours, not the peer's.
                if state.readPaused { self.lastInboundNanos.store(now, ordering: .relaxed) }
                let deadline = self.lastInboundNanos.load(ordering: .relaxed).addingSaturating(idle)
                if now >= deadline {
                    self.logger.debug("idle timeout", [("connection", "\(self.id)")])
                    self.beginCloseLocked(&state, .idleTimeout, flush: true)
                } else {
                    self.scheduleTimerLocked(&state, at: deadline, leeway: FramedConnection.leeway(for: idle))
                }
            case .closing(let reason):
                if now >= state.closeDeadline {
                    self.logger.debug("close timed out", [("connection", "\(self.id)")])
                    self.cancelLocked(&state, reason)
                } else {
                    self.scheduleTimerLocked(&state, at: state.closeDeadline, leeway: .milliseconds(10))
                }
            case .created, .cancelling, .closed:
                break
            }
        }
    }

    // MARK: Reading

    private enum ReadMode {
        case deliver((@Sendable (Message) -> Void)?)
        case discard
    }

    /// After `resumeReading()`: delivers the messages that were already buffered when reading
    /// paused (the read source fires only for new bytes).
    func deliverBuffered() {
        let onMessage: (@Sendable (Message) -> Void)?? = self.state.withLock { state in
            guard case .open = state.phase, !state.readPaused else { return nil }
            return .some(state.onMessage)
        }
        if let onMessage { _ = self.deliver(to: onMessage) }
        // Then read again (unless a handler paused reading meanwhile, or the connection closed).
        self.state.withLock { self.updateReadInterestLocked(&$0) }
    }

    func readable() {
        let mode: ReadMode? = self.state.withLock { state in
            if state.readSuspended || state.inputEnded { return nil }
            switch state.phase {
            case .open: return state.readPaused ? nil : .deliver(state.onMessage)
            case .closing: return .discard
            case .created, .cancelling, .closed: return nil
            }
        }
        guard let mode else { return }
        withUnsafeTemporaryAllocation(byteCount: FramedConnection.readChunkBytes, alignment: 16) { scratch in
            for _ in 0..<FramedConnection.readsPerEvent {
                let result: IOResult<Int>
                do throws(NetError) {
                    result = try Socket.read(self.fd, into: scratch)
                } catch {
                    self.state.withLock { self.beginCloseLocked(&$0, .ioError(error), flush: false) }
                    return
                }
                switch result {
                case .wouldBlock:
                    return
                case .done(0):
                    self.endOfStream()
                    return
                case .done(let count):
                    guard case .deliver(let onMessage) = mode else { continue }
                    self.lastInboundNanos.store(monotonicNanoseconds(), ordering: .relaxed)
                    let bytes = UnsafeRawBufferPointer(rebasing: scratch[0..<count])
                    self.inbound.withLock { $0.feed(bytes) }
                    guard self.deliver(to: onMessage) else { return }
                }
            }
        }
    }

    /// Hands every complete message to `onMessage`; false once the connection stopped being
    /// open (closed by a handler, by another thread, or by a decode error) or reading paused.
    private func deliver(to onMessage: (@Sendable (Message) -> Void)?) -> Bool {
        while true {
            guard self.isDelivering else { return false }
            let next: Result<Message?, WireError> = self.inbound.withLock { decoder in
                do throws(WireError) {
                    return .success(try decoder.next())
                } catch {
                    return .failure(error)
                }
            }
            switch next {
            case .success(let message?):
                onMessage?(message)
            case .success(nil):
                // Between frames: drop the decoder's buffer so an idle connection holds none.
                self.inbound.withLock { decoder in
                    if decoder.bufferedByteCount == 0 { decoder = FrameDecoder(maxFrameBytes: self.limits.maxFrameBytes) }
                }
                return true
            case .failure(let error):
                self.failProtocol(error)
                return false
            }
        }
    }

    private var isDelivering: Bool {
        self.state.withLock { state in
            if case .open = state.phase { return !state.readPaused }
            return false
        }
    }

    private func errorFrame(for error: WireError) -> [UInt8] {
        // The description names the fault, never payload bytes.
        (try? FrameEncoder().encode(.error(ErrorMessage(code: error.code, message: error.description)))) ?? []
    }

    /// The peer's bytes are not a valid frame: answer with an ERROR frame, then close.
    private func failProtocol(_ error: WireError) {
        self.logger.info("protocol error", [("connection", "\(self.id)"), ("peer", self.remoteAddress), ("code", error.code.name)])
        let frame = self.errorFrame(for: error)
        self.state.withLock { state in
            guard case .open = state.phase else { return }
            state.outbound.append(contentsOf: frame)
            self.beginCloseLocked(&state, .protocolError(error), flush: true)
        }
    }

    private func endOfStream() {
        let leftover: WireError? = self.inbound.withLock { decoder in
            do throws(WireError) {
                try decoder.finish()
                return nil
            } catch {
                return error
            }
        }
        // The peer shut down its sending side; it may still read (a half-close). Whatever we
        // still send goes out before our FIN, and since everything the peer sent has been read,
        // closing then sends FIN, not RST (an RST would make the peer's kernel drop the unread
        // ERROR: PROTOCOL.md §1).
        let inputEnd: (@Sendable () -> Void)? = self.state.withLock { state in
            state.inputEnded = true
            switch state.phase {
            case .open:
                if let leftover {
                    // The peer stopped inside a frame: tell it why (TRUNCATED, §2), then close.
                    self.logger.info("protocol error", [("connection", "\(self.id)"), ("peer", self.remoteAddress), ("code", leftover.code.name)])
                    state.outbound.append(contentsOf: self.errorFrame(for: leftover))
                    self.beginCloseLocked(&state, .protocolError(leftover), flush: true)
                    return nil
                }
                if let handler = state.onInputEnd {
                    // The owner decides when to close; stop reading meanwhile.
                    self.updateReadInterestLocked(&state)
                    return handler
                }
                self.beginCloseLocked(&state, .peerClosed, flush: true)
                return nil
            case .closing(let reason):
                if state.queuedBytes == 0 {
                    self.cancelLocked(&state, reason)
                } else {
                    self.updateReadInterestLocked(&state)  // the write source finishes the close
                }
                return nil
            case .created, .cancelling, .closed:
                return nil
            }
        }
        inputEnd?()
    }
}
