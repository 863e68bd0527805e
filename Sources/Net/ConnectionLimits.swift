import Wire

/// Per-connection bounds. Every buffer a connection holds is capped by one of these.
public struct ConnectionLimits: Sendable, Hashable {
    /// Largest frame payload accepted from the peer; checked on the header, before buffering.
    public var maxFrameBytes: Int = WireFormat.maxFrameBytes
    /// Bytes queued for sending; a send that would go above it closes the connection as a
    /// slow consumer.
    public var maxOutboundBytes: Int = 8 * 1024 * 1024
    /// No inbound bytes for this long closes the connection with `.idleTimeout` (nil: never).
    public var idleTimeout: Duration? = nil
    /// How long a flushing close may wait for queued bytes to drain and for the peer to close
    /// its side, before the descriptor is closed regardless.
    public var closeTimeout: Duration = .seconds(2)

    public init() {}
}

/// Why a connection closed. `onClose` receives the first reason; later ones are ignored.
public enum CloseReason: Sendable, Hashable, CustomStringConvertible {
    /// `close()` was called on this side.
    case local
    /// The peer closed its side cleanly, between frames.
    case peerClosed
    case idleTimeout
    /// The peer did not read fast enough: the outbound queue reached `maxOutboundBytes`.
    case slowConsumer
    /// The peer sent bytes that are not a valid frame (an ERROR frame was sent back), or
    /// closed its side inside a frame.
    case protocolError(WireError)
    case ioError(NetError)

    public var description: String {
        switch self {
        case .local: return "closed locally"
        case .peerClosed: return "closed by peer"
        case .idleTimeout: return "idle timeout"
        case .slowConsumer: return "slow consumer"
        case .protocolError(let error): return "protocol error: \(error)"
        case .ioError(let error): return "I/O error: \(error)"
        }
    }
}
