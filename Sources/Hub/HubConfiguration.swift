public import Net
import Wire

/// How a hub serves its clients. Defaults suit a regional hub with a few thousand terminals.
public struct HubConfiguration: Sendable {
    public var listenAddress: SocketAddress
    /// Sessions beyond this get `SERVER_BUSY` with a retry hint and are closed.
    public var maxConnections = 20_000
    /// A connection that has not sent HELLO by then is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A session silent this long is closed (clients PING at a third of it).
    public var idleTimeout: Duration = .seconds(120)
    /// Most cells accepted in one PUSH, and the default size of a PULL_BATCH.
    public var maxBatchCells: UInt32 = 50_000
    public var maxFrameBytes = WireFormat.maxFrameBytes
    /// Bytes queued for one client before it counts as a stalled reader and is dropped.
    public var maxOutboundBytes = 32 * 1024 * 1024
    /// Read-only connections serving pulls, each on its own queue.
    public var readerCount = 2
    /// The widest replicated table, to turn a cell budget into a row budget for batches.
    public var widestTableColumns = 8
    /// Checks every pushed batch before it is merged (nil: the engine's checks only).
    public var pushValidator: (any PushValidator)?

    public init(listenAddress: SocketAddress) {
        self.listenAddress = listenAddress
    }

    var connectionLimits: ConnectionLimits {
        var limits = ConnectionLimits()
        limits.maxFrameBytes = maxFrameBytes
        limits.maxOutboundBytes = maxOutboundBytes
        limits.idleTimeout = idleTimeout
        return limits
    }

    func rows(forCells cells: UInt32) -> Int {
        let budget = cells == 0 ? maxBatchCells : min(cells, maxBatchCells)
        return max(1, Int(budget) / max(1, widestTableColumns))
    }
}
