import Foundation
import SyncEngine
import Wire

/// Many idle terminal sessions held by one thread with raw non-blocking sockets: each connects,
/// sends HELLO, reads HELLO_ACK, and then stays silent. Opened in waves (so the hub's accept
/// backlog is never the limit), each wave driven by `poll` until every socket is a session or
/// has failed. No thread per connection on this side either.
final class HandshakeClients {
    private enum Phase {
        case connecting
        case awaitingAck(sent: Int)
        case established
        case failed
    }

    private struct Client {
        var fd: Int32
        var phase: Phase
        var hello: [UInt8]
        var decoder = FrameDecoder()
    }

    private var clients: [Client] = []
    /// Why connections failed, by reason, for the report.
    private(set) var failures: [String: Int] = [:]
    private let port: UInt16

    init(port: UInt16) {
        self.port = port
    }

    deinit { closeAll() }

    var established: Int { clients.filter { if case .established = $0.phase { return true } else { return false } }.count }

    /// Opens `count` sessions, `wave` at a time; gives up on a wave after `timeout`.
    func open(_ count: Int, wave: Int = 500, timeout: Duration = .seconds(30), progress: (Int) -> Void) throws {
        var opened = 0
        while opened < count {
            let size = min(wave, count - opened)
            let start = clients.count
            for _ in 0..<size { clients.append(try connect()) }
            try drive(Array(start..<clients.count), timeout: timeout)
            opened += size
            progress(established)
        }
    }

    /// How many established sessions the hub has closed since (EOF, an ERROR frame or a reset).
    func countDropped() -> Int {
        var descriptors = clients.compactMap { client -> pollfd? in
            guard case .established = client.phase else { return nil }
            return pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
        }
        let ready = poll(&descriptors, nfds_t(descriptors.count), 0)
        return ready > 0 ? descriptors.filter { $0.revents != 0 }.count : 0
    }

    /// PING → PONG on the first established session: the hub still answers with all of them held.
    func pingFirst(timeout: Duration = .seconds(5)) throws -> Double {
        guard let index = clients.firstIndex(where: { if case .established = $0.phase { return true } else { return false } }) else {
            let reasons = failures.map { "\($0.value)× \($0.key)" }.sorted().joined(separator: ", ")
            throw BenchError.verification("no established session to ping (failures: \(reasons))")
        }
        let ping = try FrameEncoder().encode(.ping(nonce: 7))
        let start = monotonicNanos()
        guard ping.withUnsafeBytes({ send(clients[index].fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == ping.count else {
            throw BenchError.system(call: "send", errno: errno)
        }
        let deadline = start + UInt64(timeout.components.seconds) * 1_000_000_000
        while monotonicNanos() < deadline {
            var descriptor = pollfd(fd: clients[index].fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            guard let message = try readMessage(index) else { continue }
            guard case .pong(nonce: 7) = message else { throw BenchError.protocolFailure("expected PONG, got \(message.type)") }
            return Double(monotonicNanos() - start) / 1e6
        }
        throw BenchError.timeout("no PONG from the hub")
    }

    func closeAll() {
        for client in clients where client.fd >= 0 { close(client.fd) }
        clients.removeAll()
    }

    // MARK: One wave

    private func connect() throws -> Client {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.system(call: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let hello = try FrameEncoder().encode(.hello(Hello(
            protocolVersions: WireFormat.supportedProtocolVersions, replica: ReplicaID.random(), role: .terminal,
            scope: "store:" + storeID(clients.count % ConnsBenchmark.storeCount + 1),
            clock: HLCTimestamp(milliseconds: systemWallClock(), counter: 0), credentials: [])))
        var client = Client(fd: fd, phase: .connecting, hello: hello)
        if result != 0 && errno != EINPROGRESS { fail(&client, "connect errno \(errno)") }
        return client
    }

    private func drive(_ indices: [Int], timeout: Duration) throws {
        let deadline = monotonicNanos() + UInt64(timeout.components.seconds) * 1_000_000_000
        var pending = indices
        while !pending.isEmpty {
            guard monotonicNanos() < deadline else {
                for index in pending { fail(&clients[index], "no HELLO_ACK within \(timeout)") }
                return
            }
            var descriptors = pending.map { index -> pollfd in
                let writing: Bool
                switch clients[index].phase {
                case .connecting: writing = true
                case .awaitingAck(let sent): writing = sent < clients[index].hello.count
                case .established, .failed: writing = false
                }
                return pollfd(fd: clients[index].fd, events: Int16(writing ? POLLOUT : POLLIN), revents: 0)
            }
            let ready = poll(&descriptors, nfds_t(descriptors.count), 100)
            if ready < 0 && errno != EINTR { throw BenchError.system(call: "poll", errno: errno) }
            for (position, descriptor) in descriptors.enumerated() where descriptor.revents != 0 {
                try advance(pending[position])
            }
            pending.removeAll { index in
                switch clients[index].phase {
                case .established, .failed: return true
                case .connecting, .awaitingAck: return false
                }
            }
        }
    }

    private func advance(_ index: Int) throws {
        switch clients[index].phase {
        case .connecting:
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(clients[index].fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { return fail(&clients[index], "connect errno \(error)") }
            clients[index].phase = .awaitingAck(sent: 0)
            sendHello(index)
        case .awaitingAck(let sent) where sent < clients[index].hello.count:
            sendHello(index)
        case .awaitingAck:
            guard let message = try readMessage(index) else { return }
            switch message {
            case .helloAck:
                clients[index].phase = .established
                clients[index].hello = []
                clients[index].decoder = FrameDecoder()
            case .error(let error):
                fail(&clients[index], "hub ERROR \(error.code)")
            default:
                fail(&clients[index], "unexpected \(message.type)")
            }
        case .established, .failed:
            return
        }
    }

    private func sendHello(_ index: Int) {
        guard case .awaitingAck(let sent) = clients[index].phase else { return }
        let hello = clients[index].hello
        let written = hello.withUnsafeBytes { raw in
            send(clients[index].fd, raw.baseAddress.map { $0 + sent }, hello.count - sent, Int32(MSG_NOSIGNAL))
        }
        if written < 0 {
            if errno != EAGAIN && errno != EINTR { fail(&clients[index], "send errno \(errno)") }
            return
        }
        clients[index].phase = .awaitingAck(sent: sent + written)
    }

    /// Reads what is there; the next whole message, or nil if it has not all arrived.
    private func readMessage(_ index: Int) throws -> Message? {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = buffer.withUnsafeMutableBytes { read(clients[index].fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno != EAGAIN && errno != EINTR { fail(&clients[index], "read errno \(errno)") }
            return nil
        }
        guard count > 0 else {
            fail(&clients[index], "closed by the hub")
            return nil
        }
        clients[index].decoder.feed(buffer[..<count])
        do {
            return try clients[index].decoder.next()
        } catch {
            fail(&clients[index], "bad frame from the hub")
            return nil
        }
    }

    private func fail(_ client: inout Client, _ reason: String) {
        failures[reason, default: 0] += 1
        close(client.fd)
        client.fd = -1
        client.phase = .failed
    }
}
