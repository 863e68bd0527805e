import Dispatch
import Glibc
import Logging
import Synchronization

/// A listening TCP socket that hands each accepted connection, not yet started, to `onAccept`.
///
/// Accepts on a read source (never blocking), with `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`.
/// Out of descriptors (`EMFILE`, `ENFILE`) or memory, it logs, stops watching the socket and
/// retries after a short backoff on a timer, instead of spinning on a readiness it cannot use.
public final class Listener: Sendable {
    /// The address actually bound (the real port when asked for port 0).
    public let boundAddress: SocketAddress

    let fd: Int32
    let limits: ConnectionLimits
    let logger: Logger
    let queue = DispatchQueue(label: "storesync.net.listener")
    let state = Mutex(ListenerState())

    /// How long accepting pauses after running out of descriptors or memory.
    static let exhaustionBackoff = DispatchTimeInterval.milliseconds(100)
    /// Accepts per readiness event, so a flood does not starve the listener's queue.
    static let acceptsPerEvent = 128

    struct ListenerState {
        enum Phase { case created, listening, closed }
        var phase = Phase.created
        var source: (any DispatchSourceRead)?
        /// The source is suspended during a backoff.
        var paused = false
        var onAccept: (@Sendable (FramedConnection) -> Void)?
        var onClosed: (@Sendable () -> Void)?
    }

    /// Binds and listens. Port 0 asks for an ephemeral port: read it from `boundAddress`.
    public init(address: SocketAddress, backlog: Int32 = 1024, limits: ConnectionLimits, logger: Logger) throws(NetError) {
        let candidates = try ResolvedAddress.resolve(address, passive: true)
        var lastError = NetError(call: "bind", errno: 0, detail: "no address to bind for \(address)")
        for candidate in candidates {
            let fd: Int32
            do {
                fd = try Socket.makeStream(family: candidate.family)
            } catch {
                lastError = error
                continue
            }
            do throws(NetError) {
                try Socket.setIntOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, call: "setsockopt(SO_REUSEADDR)")
                try systemCall("bind") { candidate.withSockAddr { Glibc.bind(fd, $0, $1) } }
                try systemCall("listen") { Glibc.listen(fd, backlog) }
                let local = try ResolvedAddress.of(fd, peer: false)
                guard let bound = local.socketAddress else {
                    throw NetError(call: "getsockname", errno: 0, detail: "not an IP address")
                }
                self.fd = fd
                self.boundAddress = bound
                self.limits = limits
                self.logger = logger
                logger.info("listening", [("address", bound.description)])
                return
            } catch {
                closeDescriptor(fd)
                lastError = NetError(call: error.call, errno: error.errno, detail: error.detail.isEmpty ? "\(address)" : error.detail)
            }
        }
        throw lastError
    }

    deinit {
        self.state.withLock { state in
            if case .created = state.phase { closeDescriptor(self.fd) }
        }
    }

    /// Starts accepting. `onAccept` runs on the listener's queue; it should start the
    /// connection (or close it) and return promptly.
    public func start(onAccept: @escaping @Sendable (FramedConnection) -> Void) {
        self.state.withLock { state in
            guard case .created = state.phase else { preconditionFailure("Listener.start called twice or after close") }
            state.onAccept = onAccept
            let source = DispatchSource.makeReadSource(fileDescriptor: self.fd, queue: self.queue)
            source.setEventHandler { self.acceptReady() }
            source.setCancelHandler { self.cancelled() }
            state.source = source
            state.phase = .listening
            source.resume()
        }
    }

    /// Stops accepting and closes the listening socket; connections already accepted stay
    /// open. `whenClosed`, if given, runs on the listener's queue once the descriptor is closed.
    public func close(whenClosed: (@Sendable () -> Void)? = nil) {
        let closedNow: Bool = self.state.withLock { state in
            switch state.phase {
            case .created:
                closeDescriptor(self.fd)
                state.phase = .closed
                return true
            case .listening:
                state.phase = .closed
                state.onClosed = whenClosed
                if state.paused {
                    state.source?.resume()
                    state.paused = false
                }
                state.source?.cancel()
                return false
            case .closed:
                return false
            }
        }
        if closedNow, let whenClosed { self.queue.async { whenClosed() } }
    }

    private func cancelled() {
        let onClosed: (@Sendable () -> Void)? = self.state.withLock { state in
            closeDescriptor(self.fd)
            state.source = nil
            state.onAccept = nil
            let onClosed = state.onClosed
            state.onClosed = nil
            return onClosed
        }
        self.logger.info("listener closed", [("address", self.boundAddress.description)])
        onClosed?()
    }

    private func acceptReady() {
        let onAccept: (@Sendable (FramedConnection) -> Void)? = self.state.withLock { state in
            guard case .listening = state.phase, !state.paused else { return nil }
            return state.onAccept
        }
        guard let onAccept else { return }
        for _ in 0..<Listener.acceptsPerEvent {
            let result: IOResult<Int32>
            do throws(NetError) {
                result = try Socket.accept(self.fd)
            } catch {
                switch error.errno {
                case ECONNABORTED, EPROTO, EPERM, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                    // That connection failed before we took it; the next may be fine.
                    self.logger.debug("accept skipped a failed connection", [("error", error.description)])
                    continue
                default:
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or unexpected: back off, don't spin.
                    self.logger.warning("accept failed; pausing", [("error", error.description), ("backoff_ms", "100")])
                    self.pause()
                    return
                }
            }
            switch result {
            case .wouldBlock:
                return
            case .done(let connectionFD):
                do {
                    try Socket.setNoDelay(connectionFD)
                } catch {
                    self.logger.debug("TCP_NODELAY not set", [("error", error.description)])
                }
                let connection = FramedConnection(fd: connectionFD, limits: self.limits, logger: self.logger)
                self.logger.debug("accepted", [("connection", "\(connection.id)"), ("peer", connection.remoteAddress)])
                onAccept(connection)
            }
        }
    }

    private func pause() {
        let paused: Bool = self.state.withLock { state in
            guard case .listening = state.phase, !state.paused else { return false }
            state.source?.suspend()
            state.paused = true
            return true
        }
        guard paused else { return }
        self.queue.asyncAfter(deadline: .now() + Listener.exhaustionBackoff) {
            self.state.withLock { state in
                guard case .listening = state.phase, state.paused else { return }
                state.paused = false
                state.source?.resume()
            }
        }
    }
}
