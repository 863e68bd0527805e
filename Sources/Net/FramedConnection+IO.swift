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
                return
            case .failed(let error):
                self.beginCloseLocked(&state, .ioError(error), flush: false)
            case .drained:
                state.writeSource?.suspend()
                state.writeArmed = false
                if case .closing = state.phase, !state.wroteShutdown {
                    Socket.shutdownWrite(self.fd)
                    state.wroteShutdown = true
                }
            }
        }
    }

    // MARK: Closing

    /// Starts closing for `reason` unless already closing (a later non-flushing close cuts a
    /// flushing one short, keeping the first reason).
    func beginCloseLocked(_ state: inout ConnectionState, _ reason: CloseReason, flush: Bool) {
        switch state.phase {
        case .created:
            closeDescriptor(self.fd)
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
            if state.queuedBytes == 0 {
                Socket.shutdownWrite(self.fd)
                state.wroteShutdown = true
            } else {
                self.armWriteLocked(&state)
            }
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

    func readable() {
        let mode: ReadMode? = self.state.withLock { state in
            switch state.phase {
            case .open: return .deliver(state.onMessage)
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
    /// open (closed by a handler, by another thread, or by a decode error).
    private func deliver(to onMessage: (@Sendable (Message) -> Void)?) -> Bool {
        while true {
            guard self.isStarted else { return false }
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

    private var isStarted: Bool {
        self.state.withLock { state in
            if case .open = state.phase { return true }
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
        self.state.withLock { state in
            switch state.phase {
            case .open:
                if let leftover {
                    // The peer stopped inside a frame. It may still read: tell it why, once.
                    self.logger.info("protocol error", [("connection", "\(self.id)"), ("peer", self.remoteAddress), ("code", leftover.code.name)])
                    state.outbound.append(contentsOf: self.errorFrame(for: leftover))
                    _ = self.flushLocked(&state)
                    self.cancelLocked(&state, .protocolError(leftover))
                } else {
                    self.cancelLocked(&state, .peerClosed)
                }
            case .closing(let reason):
                self.cancelLocked(&state, reason)
            case .created, .cancelling, .closed:
                break
            }
        }
    }
}
