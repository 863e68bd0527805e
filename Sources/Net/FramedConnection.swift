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
    public func start(
        onMessage: @escaping @Sendable (Message) -> Void,
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

extension UInt64 {
    func addingSaturating(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = self.addingReportingOverflow(other)
        return overflow ? UInt64.max : sum
    }
}
