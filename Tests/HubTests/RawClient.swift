import Dispatch
import Foundation
import Glibc
import Net
import Wire
import XCTest

/// A plain loopback socket for clients that misbehave on purpose: it writes exact bytes and
/// reads (or never reads) exactly what the test says. Blocking, with every wait bounded by poll.
final class RawClient {
    enum Failure: Error, CustomStringConvertible {
        case call(String, Int32)

        var description: String {
            switch self {
            case .call(let name, let code): return "\(name) failed: \(String(cString: strerror(code))) (errno \(code))"
            }
        }
    }

    let fd: Int32

    /// Connects to 127.0.0.1:`port`. `receiveBuffer` (set before connecting, so the advertised
    /// window is small from the start) makes a non-reading client fill up quickly.
    init(port: UInt16, receiveBuffer: Int32? = nil) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.call("socket", errno) }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw Failure.call("connect", code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
    }

    deinit {
        Glibc.close(fd)
    }

    /// Writes everything, waiting for room at most until `timeout`. Throws the socket's error
    /// (EPIPE, ECONNRESET once the server dropped us) or ETIMEDOUT.
    func write(_ bytes: [UInt8], timeout: Duration = .seconds(30)) throws {
        let end = DispatchTime.now().uptimeNanoseconds + nanoseconds(timeout)
        var offset = 0
        while offset < bytes.count {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { throw Failure.call("send", ETIMEDOUT) }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: (end - now) / 1_000_000 + 1))
            if ready < 0 {
                if errno == EINTR { continue }
                throw Failure.call("poll", errno)
            }
            if ready == 0 { continue }
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                throw Failure.call("send", errno)
            }
            offset += written
        }
    }

    func send(_ message: Message) throws {
        try write(try FrameEncoder().encode(message))
    }

    func shutdownWrite() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads until the peer closes or `timeout` passes: the bytes, and whether the end came.
    func readUntilEndOfStream(timeout: Duration = .seconds(30)) -> (bytes: [UInt8], endOfStream: Bool) {
        var bytes = pending
        pending = []
        let end = DispatchTime.now().uptimeNanoseconds + nanoseconds(timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return (bytes, false) }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: (end - now) / 1_000_000 + 1))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            // A reset after the server's bytes arrived counts as the end too.
            if count <= 0 { return (bytes, true) }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Reads until one whole message is decoded, the peer closes, or `timeout` passes. Bytes
    /// read past that message are kept for the next `receive` or `readUntilEndOfStream`.
    func receive(timeout: Duration = .seconds(30)) throws -> Message? {
        let end = DispatchTime.now().uptimeNanoseconds + nanoseconds(timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if pending.count >= WireFormat.headerSize {
                let length = pending[5..<9].reduce(0) { $0 << 8 | Int($1) }
                if pending.count >= WireFormat.headerSize + length {
                    let frame = Array(pending.prefix(WireFormat.headerSize + length))
                    pending.removeFirst(frame.count)
                    return try FrameDecoder.decodeFrame(frame)
                }
            }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return nil }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: (end - now) / 1_000_000 + 1))
            if ready <= 0 { continue }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return nil }
            pending.append(contentsOf: chunk[0..<count])
        }
    }

    /// Bytes read and not yet returned by `receive`.
    private var pending: [UInt8] = []

    /// The ERROR frames (and other messages) in `bytes`, as the server sent them.
    static func decodeAll(_ bytes: [UInt8]) throws -> [Message] {
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        var messages: [Message] = []
        while let message = try decoder.next() { messages.append(message) }
        return messages
    }
}

func nanoseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
}

/// Runs `body` on a thread of its own; `join` waits for it with a deadline and rethrows.
final class BackgroundTask: @unchecked Sendable {
    // `@unchecked` is true: `outcome` is written once before `done` is signalled and read after.
    private var outcome: Result<Void, any Error>?
    private let done = DispatchSemaphore(value: 0)
    private let finishedFlag = NSLock()
    private var finishedValue = false

    init(_ name: String, _ body: @escaping @Sendable () throws -> Void) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            finishedFlag.lock()
            outcome = result
            finishedValue = true
            finishedFlag.unlock()
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    var isFinished: Bool {
        finishedFlag.lock()
        defer { finishedFlag.unlock() }
        return finishedValue
    }

    func join(timeout: Duration = .seconds(60), file: StaticString = #filePath, line: UInt = #line) throws {
        guard done.wait(timeout: .now() + .nanoseconds(Int(nanoseconds(timeout)))) == .success else {
            XCTFail("background task did not finish in time", file: file, line: line)
            return
        }
        done.signal()
        finishedFlag.lock()
        let result = outcome
        finishedFlag.unlock()
        try result?.get()
    }
}
