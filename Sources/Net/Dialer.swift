import Glibc
import Logging

/// Opens outbound connections.
public enum Dialer {
    /// Connects with a deadline covering resolution and every address tried, and returns a
    /// connection not yet started. Blocks the calling thread (in `poll`) for at most `timeout`
    /// after resolving; a refused connection throws `NetError` with `ECONNREFUSED`, a deadline
    /// passed throws `NetError` with `ETIMEDOUT`.
    public static func connect(to address: SocketAddress, timeout: Duration, limits: ConnectionLimits, logger: Logger) throws(NetError) -> FramedConnection {
        let deadline = monotonicNanoseconds().addingSaturating(timeout.clampedNanoseconds)
        let candidates = try ResolvedAddress.resolve(address, passive: false)
        var lastError = NetError(call: "connect", errno: 0, detail: "no address for \(address)")
        for candidate in candidates {
            do {
                let fd = try connectOne(candidate, deadline: deadline, address: address)
                let connection = FramedConnection(fd: fd, limits: limits, logger: logger)
                logger.debug("connected", [("connection", "\(connection.id)"), ("peer", connection.remoteAddress)])
                return connection
            } catch {
                lastError = error
                if error.errno == ETIMEDOUT { break }
            }
        }
        throw lastError
    }

    private static func connectOne(_ candidate: ResolvedAddress, deadline: UInt64, address: SocketAddress) throws(NetError) -> Int32 {
        let fd = try Socket.makeStream(family: candidate.family)
        do throws(NetError) {
            // EINPROGRESS: the handshake continues in the kernel; wait for writability. After
            // an EINTR the helper calls again, which answers EALREADY: the same situation.
            let started = try nonBlockingCall("connect", alsoWouldBlock: [EINPROGRESS, EALREADY]) {
                candidate.withSockAddr { Glibc.connect(fd, $0, $1) }
            }
            if case .wouldBlock = started {
                try waitWritable(fd, deadline: deadline, address: address)
                let pending = try Socket.pendingError(fd)
                if pending != 0 { throw NetError(call: "connect", errno: pending, detail: "\(address)") }
            }
            do {
                try Socket.setNoDelay(fd)
            } catch {
                // Latency only; the connection works without it.
            }
            return fd
        } catch {
            closeDescriptor(fd)
            if error.call == "connect", error.detail.isEmpty {
                throw NetError(call: "connect", errno: error.errno, detail: "\(address)")
            }
            throw error
        }
    }

    private static func waitWritable(_ fd: Int32, deadline: UInt64, address: SocketAddress) throws(NetError) {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else {
                throw NetError(call: "connect", errno: ETIMEDOUT, detail: "no answer from \(address) in time")
            }
            let remainingMilliseconds = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = try systemCall("poll") { Glibc.poll(&descriptor, 1, remainingMilliseconds) }
            if ready > 0 { return }
        }
    }
}
