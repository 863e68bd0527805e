import Dispatch
import Logging
import Synchronization
import Wire

/// A synchronous client over `FramedConnection`, for one-shot tools and tests: send, then wait
/// for the next message with a deadline. Messages are kept in arrival order until received
/// (unbounded: meant for request/response use, not for a firehose).
public final class BlockingFramedClient: Sendable {
    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case timedOut
        case closed(CloseReason)

        public var description: String {
            switch self {
            case .timedOut: return "timed out waiting for a message"
            case .closed(let reason): return "connection closed (\(reason))"
            }
        }
    }

    public let connection: FramedConnection
    private let mailbox = Mailbox()

    /// What the connection's handlers share with the waiting thread. A class of its own so the
    /// handlers do not hold the client (which closes the connection when released).
    private final class Mailbox: Sendable {
        struct Inbox {
            var messages: [Message] = []
            var head = 0
            var closeReason: CloseReason?
        }

        let inbox = Mutex(Inbox())
        /// Signalled once per message and once at close; a waiter re-checks the inbox.
        let arrivals = DispatchSemaphore(value: 0)
        let closedSignal = DispatchSemaphore(value: 0)
    }

    public init(connectingTo address: SocketAddress, timeout: Duration, limits: ConnectionLimits = ConnectionLimits(), logger: Logger) throws(NetError) {
        self.connection = try Dialer.connect(to: address, timeout: timeout, limits: limits, logger: logger)
        let mailbox = self.mailbox
        self.connection.start(
            onMessage: { message in
                mailbox.inbox.withLock { $0.messages.append(message) }
                mailbox.arrivals.signal()
            },
            onClose: { reason in
                mailbox.inbox.withLock { $0.closeReason = reason }
                mailbox.arrivals.signal()
                mailbox.closedSignal.signal()
            }
        )
    }

    deinit {
        self.connection.close(flushing: false)
    }

    /// Queues a message; throws if the connection is closed or the queue is full.
    public func send(_ message: Message) throws(Failure) {
        guard self.connection.send(message) else {
            throw Failure.closed(self.closeReason ?? .local)
        }
    }

    /// The next message, waiting at most `timeout`. Messages that arrived before the close are
    /// still returned; after them, `.closed(reason)`.
    public func receive(timeout: Duration) throws(Failure) -> Message {
        let deadline = DispatchTime(uptimeNanoseconds: monotonicNanoseconds().addingSaturating(timeout.clampedNanoseconds))
        while true {
            let next: Result<Message, Failure>? = self.mailbox.inbox.withLock { inbox in
                if inbox.head < inbox.messages.count {
                    let message = inbox.messages[inbox.head]
                    inbox.head += 1
                    if inbox.head == inbox.messages.count {
                        inbox.messages.removeAll()
                        inbox.head = 0
                    }
                    return .success(message)
                }
                if let reason = inbox.closeReason { return .failure(.closed(reason)) }
                return nil
            }
            if let next { return try next.get() }
            if self.mailbox.arrivals.wait(timeout: deadline) == .timedOut {
                throw Failure.timedOut
            }
        }
    }

    /// Why the connection closed, once it has.
    public var closeReason: CloseReason? {
        self.mailbox.inbox.withLock { $0.closeReason }
    }

    /// Closes (flushing what is queued) and waits up to `timeout` for the close to complete.
    /// Returns the close reason, or nil if the close did not complete in time.
    @discardableResult
    public func close(timeout: Duration = .seconds(5)) -> CloseReason? {
        self.connection.close(flushing: true)
        let deadline = DispatchTime(uptimeNanoseconds: monotonicNanoseconds().addingSaturating(timeout.clampedNanoseconds))
        if self.closeReason == nil, self.mailbox.closedSignal.wait(timeout: deadline) == .success {
            self.mailbox.closedSignal.signal()  // leave it signalled for a later call
        }
        return self.closeReason
    }
}
