import Dispatch
import Foundation
import Glibc
import SyncEngine

/// A TCP proxy on 127.0.0.1:0 in front of a hub that injects faults: it cuts connections at
/// random byte offsets (with a FIN or a reset), splits what it forwards into small writes and
/// delays them. Every decision comes from a generator seeded with (seed, connection number),
/// so a failing run replays with the same fault plan per connection.
///
/// One thread accepts; one thread per connection pumps both directions with `poll`. Blocking
/// sockets, every wait bounded. `stop()` wakes every thread through a pipe and waits for them.
final class FaultProxy: @unchecked Sendable {
    // `@unchecked` is true: the mutable fields below are touched only under `lock`; the
    // descriptors are owned by the thread that uses them and closed by it.

    struct Faults: Sendable {
        /// Chance that a connection is cut at all.
        var cutProbability = 0.5
        /// A cut connection is cut after a random number of forwarded bytes below this
        /// (log-uniform, so small offsets are as likely as large ones).
        var maxCutOffset = 32 * 1024
        /// Chance that a chunk is forwarded in several writes.
        var splitProbability = 0.5
        /// Longest pause before a write.
        var maxDelayMicroseconds: UInt32 = 1_500

        init() {}
    }

    struct Statistics: Sendable {
        var connections = 0
        var cuts = 0
        var bytesForwarded = 0
    }

    let port: UInt16
    let seed: UInt64
    private let listenFD: Int32
    private let targetPort: UInt16
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var faults: Faults?
    private var statistics = Statistics()

    /// Listens on 127.0.0.1:0 and forwards to 127.0.0.1:`targetPort`. `faults` nil: pass through.
    init(targetPort: UInt16, seed: UInt64, faults: Faults? = Faults()) throws {
        self.targetPort = targetPort
        self.seed = seed
        self.faults = faults
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RawClient.Failure.call("socket", errno) }
        var address = FaultProxy.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RawClient.Failure.call("bind/listen", code)
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        var pipeFDs: [Int32] = [0, 0]
        guard Glibc.pipe(&pipeFDs) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw RawClient.Failure.call("pipe2", code)
        }
        self.listenFD = fd
        self.port = UInt16(bigEndian: local.sin_port)
        self.wakeRead = pipeFDs[0]
        self.wakeWrite = pipeFDs[1]
        group.enter()
        let thread = Thread { [self] in
            self.acceptLoop()
            self.group.leave()
        }
        thread.name = "fault-proxy.accept"
        thread.start()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    var stats: Statistics {
        lock.lock()
        defer { lock.unlock() }
        return statistics
    }

    /// New connections get these faults (nil: forwarded untouched).
    func setFaults(_ faults: Faults?) {
        lock.lock()
        self.faults = faults
        lock.unlock()
    }

    /// Closes the listener and every connection, and waits for the threads to end.
    func stop() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)  // never drained: wakes every poller, now and later
        _ = group.wait(timeout: .now() + .seconds(30))
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    private func isWoken(_ descriptor: pollfd) -> Bool {
        descriptor.revents != 0
    }

    private func acceptLoop() {
        defer { Glibc.close(listenFD) }
        while true {
            var descriptors = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&descriptors, 2, 1_000)
            if ready < 0 && errno != EINTR { return }
            if isWoken(descriptors[1]) { return }
            guard ready > 0, descriptors[0].revents != 0 else { continue }
            let client = Glibc.accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let upstream = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = FaultProxy.loopback(port: targetPort)
            let connected = upstream >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            guard connected else {
                // The hub is down: the client sees its connection end at once, like a refused connect.
                if upstream >= 0 { Glibc.close(upstream) }
                Glibc.close(client)
                continue
            }
            lock.lock()
            let number = statistics.connections
            statistics.connections += 1
            let faults = self.faults
            lock.unlock()
            group.enter()
            let thread = Thread { [self] in
                self.pump(client: client, upstream: upstream, number: number, faults: faults)
                self.group.leave()
            }
            thread.name = "fault-proxy.connection"
            thread.start()
        }
    }

    /// Forwards both ways until both sides closed, a cut, an error, or `stop()`; then closes both.
    private func pump(client: Int32, upstream: Int32, number: Int, faults: Faults?) {
        var random = SplitMix64(seed: seed &+ UInt64(number) &* 0xD1B5_4A32_D192_ED03)
        for fd in [client, upstream] {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // A write never waits forever, even if a peer stopped reading.
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        var cutAfter: Int?
        var resetOnCut = false
        if let faults, Double.random(in: 0..<1, using: &random) < faults.cutProbability {
            // Log-uniform: as many cuts inside the handshake as deep inside a long transfer.
            let exponent = Double.random(in: 0..<log(Double(max(2, faults.maxCutOffset))), using: &random)
            cutAfter = Int(exp(exponent)) - 1
            resetOnCut = Bool.random(using: &random)
        }
        var forwarded = 0
        var open = [true, true]  // client → upstream, upstream → client
        let ends = [(from: client, to: upstream), (from: upstream, to: client)]
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        var cut = false
        loop: while open[0] || open[1] {
            var descriptors = [pollfd(fd: client, events: open[0] ? Int16(POLLIN) : 0, revents: 0),
                               pollfd(fd: upstream, events: open[1] ? Int16(POLLIN) : 0, revents: 0),
                               pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&descriptors, 3, 1_000)
            if ready < 0 && errno != EINTR { break }
            if isWoken(descriptors[2]) { break }
            for direction in 0..<2 where open[direction] && descriptors[direction].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(ends[direction].from, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    if count < 0 { break loop }  // a reset: end both sides
                    // End of stream: pass it on, keep the other direction flowing.
                    Glibc.shutdown(ends[direction].to, Int32(SHUT_WR))
                    open[direction] = false
                    continue
                }
                var length = count
                if let limit = cutAfter, forwarded + length >= limit {
                    length = limit - forwarded
                    cut = true
                    lock.lock()
                    statistics.cuts += 1
                    lock.unlock()
                }
                guard forward(chunk, length: length, to: ends[direction].to, faults: faults, random: &random) else { break loop }
                forwarded += length
                if cut { break loop }
            }
        }
        if cut && resetOnCut {
            for fd in [client, upstream] {
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            }
        }
        Glibc.close(client)
        Glibc.close(upstream)
        lock.lock()
        statistics.bytesForwarded += forwarded
        lock.unlock()
    }

    /// Writes `chunk[0..<length]`, split into pieces and delayed as the faults say.
    private func forward(_ chunk: [UInt8], length: Int, to fd: Int32, faults: Faults?, random: inout SplitMix64) -> Bool {
        var offset = 0
        while offset < length {
            var piece = length - offset
            if let faults {
                if Double.random(in: 0..<1, using: &random) < faults.splitProbability {
                    piece = Int.random(in: 1...piece, using: &random)
                }
                if faults.maxDelayMicroseconds > 0 {
                    // Fault injection, not synchronisation: a slow link between terminal and hub.
                    usleep(UInt32.random(in: 0...faults.maxDelayMicroseconds, using: &random))
                }
            }
            let written = chunk.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, piece, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}
