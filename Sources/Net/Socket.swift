import Glibc

/// Small wrappers over the socket calls, all through `systemCall` / `nonBlockingCall`.
enum Socket {
    /// A new non-blocking, close-on-exec stream socket.
    static func makeStream(family: Int32) throws(NetError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return try systemCall("socket") { Glibc.socket(family, type, 0) }
    }

    static func setIntOption(_ fd: Int32, level: Int32, name: Int32, value: Int32, call: String) throws(NetError) {
        var value = value
        try systemCall(call) {
            Glibc.setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Small frames go out at once: the protocol is request/response and notification driven.
    static func setNoDelay(_ fd: Int32) throws(NetError) {
        try setIntOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, call: "setsockopt(TCP_NODELAY)")
    }

    /// The pending error of a socket (`SO_ERROR`), e.g. the outcome of a non-blocking connect.
    static func pendingError(_ fd: Int32) throws(NetError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try systemCall("getsockopt(SO_ERROR)") { Glibc.getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) }
        return value
    }

    /// Reads into `buffer`: `.done(0)` is end of stream.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(NetError) -> IOResult<Int> {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .done(0) }
        return try nonBlockingCall("read") { Glibc.read(fd, base, buffer.count) }
    }

    /// Writes as much of `bytes` as the socket takes, without raising SIGPIPE.
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(NetError) -> IOResult<Int> {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .done(0) }
        return try nonBlockingCall("send") { Glibc.send(fd, base, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes `bytes[offset...]` until done or the socket is full; returns how many were written.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8], from offset: Int) throws(NetError) -> Int {
        var written = 0
        while offset + written < bytes.count {
            let start = offset + written
            let outcome = bytes.withUnsafeBytes { raw -> Result<IOResult<Int>, NetError> in
                do throws(NetError) {
                    return .success(try Socket.send(fd, UnsafeRawBufferPointer(rebasing: raw[start...])))
                } catch {
                    return .failure(error)
                }
            }
            switch try outcome.get() {
            case .done(let count): written += count
            case .wouldBlock: return written
            }
        }
        return written
    }

    /// `accept4`, which Glibc's Swift module does not export (it is a GNU extension), looked
    /// up once from the C library. Accepting with `SOCK_NONBLOCK | SOCK_CLOEXEC` in the same
    /// call leaves no window where the descriptor blocks or leaks into a child process.
    private typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
    private static let accept4Function: Accept4? = {
        guard let symbol = dlsym(nil, "accept4") else { return nil }
        return unsafeBitCast(symbol, to: Accept4.self)
    }()

    /// Accepts one pending connection as a non-blocking, close-on-exec descriptor.
    static func accept(_ listenerFD: Int32) throws(NetError) -> IOResult<Int32> {
        if let accept4 = accept4Function {
            let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            return try nonBlockingCall("accept4") { accept4(listenerFD, nil, nil, flags) }
        }
        // Fallback for a C library without accept4: set the flags right after.
        let result = try nonBlockingCall("accept") { Glibc.accept(listenerFD, nil, nil) }
        guard case .done(let fd) = result else { return result }
        do throws(NetError) {
            let flags = try systemCall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
            try systemCall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
            try systemCall("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return result
    }

    static func shutdownWrite(_ fd: Int32) {
        // ENOTCONN once the peer reset the connection: nothing left to do, the close follows.
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }
}
