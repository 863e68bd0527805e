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

    // Back-pressure (PROTOCOL.md §5.3). What one session can make the hub hold is bounded by
    // these, whatever the client pipelines: beyond either push bound the hub stops reading that
    // socket until the merge acknowledges, so TCP flow control stops the client.

    /// Most PUSHes of one session received and not yet acknowledged (the window).
    public var maxPushesInFlight = 8
    /// Most bytes (in memory, as estimated per changeset) of one session's unacknowledged
    /// PUSHes; the push that crosses it is still taken, so the bound is this plus one push.
    public var maxPushBytesInFlight = 8 * 1024 * 1024
    /// Most VIEW_REQUESTs of one session being answered at once.
    public var maxViewsInFlight = 2
    /// Rows per VIEW_ROWS chunk.
    public var viewRowsPerChunk = 1_000
    /// A view's next chunk is encoded and queued only once the connection's outbound queue is
    /// at or below this many bytes: a long answer streams at the client's pace.
    public var viewStreamLowWaterBytes = 256 * 1024

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
