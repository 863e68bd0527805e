import Dispatch
import Glibc
import Logging
import Synchronization
import Wire

/// One TCP connection carrying Wire messages.
///
/// The descriptor is non-blocking and watched by a read source and a write source on a serial
/// queue of its own (targeting a shared concurrent queue): no thread per connection. Handlers
/// run on that queue, one at a time, in order; `onClose` runs once, last, after the descriptor
/// is closed. Handlers must not block for long: other connections share the threads.
///
/// Lifetime: once started, the connection keeps itself alive (its sources hold it) until it
/// closes. The descriptor has one owner: it is closed by whichever of the two sources' cancel
/// handlers runs second, or directly if the connection closes before it was started.
public final class FramedConnection: Sendable {
    /// Process-unique, for logs and maps; never reused.
    public let id: UInt64
    /// The peer's numeric address, `HOST:PORT` (read once, when the connection was made).
    public let remoteAddress: String

    let fd: Int32
    let limits: ConnectionLimits
    let logger: Logger
    let queue: DispatchQueue
    /// Everything the send path and the handlers share.
    let state: Mutex<ConnectionState>
    /// The decoder. Only the connection's queue uses it, so the lock is never contended; it is
    /// here so that `Sendable` holds without `@unchecked`.
    let inbound: Mutex<FrameDecoder>
    /// When the last inbound bytes arrived (`monotonicNanoseconds`), for the idle timer.
    let lastInboundNanos = Atomic<UInt64>(0)

    private static let nextID = Atomic<UInt64>(1)
    /// Every connection's queue targets this one, so connections share Dispatch's thread pool.
    static let sharedTarget = DispatchQueue(label: "storesync.net", attributes: .concurrent)

    /// Takes ownership of `fd`, a connected non-blocking stream socket.
    init(fd: Int32, limits: ConnectionLimits, logger: Logger) {
        self.id = FramedConnection.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.fd = fd
        self.limits = limits
        self.logger = logger
        self.queue = DispatchQueue(label: "storesync.net.connection", target: FramedConnection.sharedTarget)
        self.state = Mutex(ConnectionState())
        self.inbound = Mutex(FrameDecoder(maxFrameBytes: limits.maxFrameBytes))
        if let peer = try? ResolvedAddress.of(fd, peer: true), let address = peer.socketAddress {
            self.remoteAddress = address.description
        } else {
            self.remoteAddress = "unknown"
        }
    }

    deinit {
        // A started connection is kept alive by its sources until closed; only one never
        // started can still own its descriptor here.
        self.state.withLock { state in
            if case .created = state.phase { closeDescriptor(self.fd) }
        }
    }

    /// Starts reading. Handlers are called on the connection's queue, one at a time, in order.
    /// If the connection was already closed, `onClose` is called (asynchronously) with why.
    ///
    /// `onInputEnd`, when given, makes a clean end of the peer's stream (between frames) a
    /// half-close rather than the end of the connection: reading stops, `onInputEnd` is called on
    /// the queue, and the connection stays open for sending until the owner closes it (a server
    /// still owes answers, an ERROR above all, to a client that shut down its sending side;
    /// PROTOCOL.md §1). Without it, the connection sends what is queued and closes `.peerClosed`.
    public func start(
        onMessage: @escaping @Sendable (Message) -> Void,
        onInputEnd: (@Sendable () -> Void)? = nil,
        onClose: @escaping @Sendable (CloseReason) -> Void
    ) {
        let alreadyClosed: CloseReason? = self.state.withLock { state in
            switch state.phase {
            case .created:
                break
            case .closed(let reason):
                return reason
            case .open, .closing, .cancelling:
                preconditionFailure("FramedConnection.start called twice")
            }
            state.onMessage = onMessage
            state.onInputEnd = onInputEnd
            state.onClose = onClose
            let read = DispatchSource.makeReadSource(fileDescriptor: self.fd, queue: self.queue)
            read.setEventHandler { self.readable() }
            read.setCancelHandler { self.sourceCancelled() }
            let write = DispatchSource.makeWriteSource(fileDescriptor: self.fd, queue: self.queue)
            write.setEventHandler { self.writable() }
            write.setCancelHandler { self.sourceCancelled() }
            state.readSource = read
            state.writeSource = write
            state.phase = .open
            let now = monotonicNanoseconds()
            self.lastInboundNanos.store(now, ordering: .relaxed)
            if let idle = self.limits.idleTimeout?.clampedNanoseconds {
                self.scheduleTimerLocked(&state, at: now.addingSaturating(idle), leeway: FramedConnection.leeway(for: idle))
            }
            if state.queuedBytes > 0 { self.armWriteLocked(&state) }
            read.resume()
            self.updateReadInterestLocked(&state)
            return nil
        }
        if let reason = alreadyClosed {
            self.queue.async { onClose(reason) }
        }
    }

    /// Encodes and queues one message; writes at once what the socket takes. Thread-safe.
    ///
    /// Returns false if the connection is closing or closed, if the message cannot be encoded
    /// (too large), or if it would take the queue above `maxOutboundBytes`; in that last case
    /// the connection closes with `.slowConsumer`.
    @discardableResult
    public func send(_ message: Message) -> Bool {
        let frame: [UInt8]
        do {
            frame = try FrameEncoder().encode(message)
        } catch {
            self.logger.warning("message not sent: cannot encode", [("connection", "\(self.id)"), ("type", "\(message.type)"), ("error", error.code.name)])
            return false
        }
        return self.send(encodedFrames: frame)
    }

    /// Queues bytes that are already one or more whole frames (from `FrameEncoder`), so a
    /// message sent to many connections is encoded once. Same result as `send(_:)`.
    @discardableResult
    public func send(encodedFrames frames: [UInt8]) -> Bool {
        self.state.withLock { state in
            self.enqueueLocked(&state, frames)
        }
    }

    /// Sends what is queued (within `closeTimeout`), then closes; `onClose(.local)` fires once.
    /// Without flushing, queued bytes are dropped and the descriptor closes at once.
    /// Does nothing if the connection is already closing.
    public func close(flushing: Bool = true) {
        self.state.withLock { state in
            self.beginCloseLocked(&state, .local, flush: flushing)
        }
    }

    /// Bytes accepted by `send` and not yet taken by the socket.
    public var queuedOutboundBytes: Int {
        self.state.withLock { $0.queuedBytes }
    }

    /// Bytes read from the socket and not yet delivered as messages (at most one read chunk
    /// plus one partial frame while reading is paused).
    public var bufferedInboundBytes: Int {
        self.inbound.withLock { $0.bufferedByteCount }
    }

    /// Stops reading the socket: no more messages are delivered (not even ones already
    /// buffered) until `resumeReading()`. The kernel's receive buffer then fills and TCP flow
    /// control stops the peer: how a server bounds what a pipelining client makes it hold.
    /// Non-blocking; callable from any thread, including from inside `onMessage`.
    public func pauseReading() {
        self.state.withLock { state in
            state.readPaused = true
            self.updateReadInterestLocked(&state)
        }
    }

    /// Undoes `pauseReading()`: messages already buffered are delivered first (on the queue),
    /// then reading goes on. Does nothing if reading was not paused.
    public func resumeReading() {
        let resumed = self.state.withLock { state -> Bool in
            guard state.readPaused else { return false }
            state.readPaused = false
            return true
        }
        // The read source resumes only after the buffered messages are delivered, on the queue:
        // an end of stream read first would find them still buffered and look like TRUNCATED.
        if resumed { self.queue.async { self.deliverBuffered() } }
    }

    /// Whether `pauseReading()` is in effect.
    public var isReadingPaused: Bool {
        self.state.withLock { $0.readPaused }
    }

    /// Waits, without blocking anything, until the bytes queued for sending drop to `bytes` or
    /// fewer, then runs `body` on the connection's queue. Runs `body` with false at once (on the
    /// queue) if the connection is closing or closed, or when it closes while waiting. Several
    /// waiters may wait at once (each runs once). How a producer streams a long answer without
    /// queueing it whole (VIEW_ROWS chunks).
    public func whenOutboundDrains(below bytes: Int, _ body: @escaping @Sendable (Bool) -> Void) {
        let immediate: Bool? = self.state.withLock { state in
            switch state.phase {
            case .created, .open: break
            case .closing, .cancelling, .closed: return false
            }
            if state.queuedBytes <= bytes { return true }
            state.drainWaiters.append(DrainWaiter(threshold: bytes, body: body))
            return nil
        }
        if let immediate { self.queue.async { body(immediate) } }
    }

    /// True until the connection starts closing.
    public var isOpen: Bool {
        self.state.withLock { state in
            switch state.phase {
            case .created, .open: return true
            case .closing, .cancelling, .closed: return false
            }
        }
    }

    /// Timer slack: coalescing wake-ups matters with thousands of idle connections.
    static func leeway(for nanoseconds: UInt64) -> DispatchTimeInterval {
        .nanoseconds(Int(min(nanoseconds / 8, 1_000_000_000)))
    }
}

/// The mutable part of a connection, reached only under `FramedConnection.state`'s lock.
struct ConnectionState {
    enum Phase {
        /// Made, not started: no sources yet; `send` writes directly or queues.
        case created
        case open
        /// Flushing the queue, then `shutdown(SHUT_WR)` and waiting for the peer's end of
        /// stream (inbound bytes are discarded), bounded by `closeTimeout`.
        case closing(CloseReason)
        /// Sources cancelled; the second cancel handler closes the descriptor.
        case cancelling(CloseReason)
        case closed(CloseReason)
    }

    var phase = Phase.created
    var onMessage: (@Sendable (Message) -> Void)?
    var onInputEnd: (@Sendable () -> Void)?
    /// The owner paused reading (`pauseReading`).
    var readPaused = false
    /// The peer ended its stream (EOF read); nothing more will be read.
    var inputEnded = false
    /// The read source is suspended (balanced with resume; it must run to be cancelled).
    var readSuspended = false
    /// Called once the outbound queue drains to their thresholds.
    var drainWaiters: [DrainWaiter] = []
    var onClose: (@Sendable (CloseReason) -> Void)?
    /// Bytes to send are `outbound[outboundStart...]`; empty (no capacity) when drained, so an
    /// idle connection holds no send buffer.
    var outbound: [UInt8] = []
    var outboundStart = 0
    var readSource: (any DispatchSourceRead)?
    var writeSource: (any DispatchSourceWrite)?
    /// The write source is resumed (it is created suspended and suspended when drained).
    var writeArmed = false
    var timer: (any DispatchSourceTimer)?
    var pendingCancels = 0
    var closeDeadline: UInt64 = 0
    var wroteShutdown = false

    var queuedBytes: Int { outbound.count - outboundStart }
}

struct DrainWaiter {
    var threshold: Int
    var body: @Sendable (Bool) -> Void
}

extension UInt64 {
    func addingSaturating(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = self.addingReportingOverflow(other)
        return overflow ? UInt64.max : sum
    }
}
