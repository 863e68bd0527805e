import Foundation
import Glibc
import LockBox

/// A failed socket call: its name and errno.
struct SocketFailure: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call) failed: \(String(cString: strerror(code))) (errno \(code))" }
}

/// What a link does to each new connection. Every draw comes from the link's generator and the
/// connection's number, so one seed gives every link the same plan per connection.
struct LinkFaults: Sendable, CustomStringConvertible {
    /// Chance that a connection is cut after a random number of forwarded bytes.
    var cutProbability = 0.0
    /// Cut offsets are log-uniform in 1...maxCutOffset (small offsets land in headers and handshakes).
    var maxCutOffset = 64 * 1024
    /// Chance that a cut is a reset (RST) rather than an orderly close (FIN).
    var resetProbability = 0.5
    /// Chance that a connection stalls once (forwards nothing either way) at a random offset.
    var stallProbability = 0.0
    var maxStallMilliseconds = 3_000
    /// Chance that each chunk waits before it is forwarded, and the longest wait.
    var delayProbability = 0.0
    var maxDelayMilliseconds = 0
    /// Chance that a chunk is written in several small writes.
    var splitProbability = 0.0

    static let none = LinkFaults()

    var description: String {
        "cut=\(cutProbability) stall=\(stallProbability)/\(maxStallMilliseconds)ms delay=\(delayProbability)/\(maxDelayMilliseconds)ms split=\(splitProbability)"
    }
}

/// What one proxied connection will suffer, drawn when it is accepted.
struct ConnectionPlan: Sendable {
    var number: Int
    var cutAfter: Int?
    var cutWithReset = false
    var stallAt: Int?
    var stallMilliseconds = 0
    var faults: LinkFaults
    var rng: Rng

    var summary: String {
        var parts: [String] = []
        if let cutAfter { parts.append("cut@\(cutAfter)\(cutWithReset ? "/rst" : "/fin")") }
        if let stallAt { parts.append("stall@\(stallAt)/\(stallMilliseconds)ms") }
        return parts.isEmpty ? "clean" : parts.joined(separator: " ")
    }
}

/// The harness's TCP proxy in front of one hub, for one link of the topology (a terminal's link
/// to its regional hub, or a regional hub's link to HQ). It listens on 127.0.0.1:0 and keeps its
/// port while the hub behind it restarts on new ports (`retarget`). It injects:
/// - cuts at random byte offsets, with a FIN or a reset;
/// - stalls (nothing forwarded either way for a while) and per-chunk delays and split writes;
/// - refusals: while the link is down, or while no hub is behind it, a connection is accepted
///   and reset at once (the client sees ECONNRESET at its first read or write);
/// - `resetAll()`: every open connection is reset now (long-lived relay and live sessions).
///
/// One thread accepts; one thread per connection pumps both directions with non-blocking
/// sockets and `poll` (timeouts of 20 ms), so a stopped hub never blocks a pump and every
/// thread notices `stop()` and `resetAll()` promptly.
final class ChaosProxy: Sendable {
    struct Statistics: Sendable {
        var connections = 0
        var refused = 0
        var cuts = 0
        var stalls = 0
        var resetsByHarness = 0
        var bytes = 0
    }

    private struct State {
        var targetPort: UInt16?
        var down = false
        var faults = LinkFaults.none
        var generation: UInt64 = 0
        var stopped = false
        var rng: Rng
        var statistics = Statistics()
        var live = 0
    }

    let name: String
    let port: UInt16
    private let listenFD: Int32
    private let state: LockBox<State>
    private let threads = DispatchGroup()
    private let events: @Sendable (String) -> Void

    /// Listens on 127.0.0.1:0. `events` receives one line per fault the proxy applies.
    init(name: String, rng: Rng, events: @escaping @Sendable (String) -> Void) throws {
        self.name = name
        self.events = events
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
        var address = ChaosProxy.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 256) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(call: "bind/listen", code: code)
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(call: "getsockname", code: code)
        }
        listenFD = fd
        port = UInt16(bigEndian: local.sin_port)
        state = LockBox(State(rng: rng))
        threads.enter()
        let thread = Thread { [self] in
            self.acceptLoop()
            self.threads.leave()
        }
        thread.name = "chaos-proxy.\(name).accept"
        thread.start()
    }

    var address: String { "127.0.0.1:\(port)" }

    var statistics: Statistics { state.withLockedValue { $0.statistics } }

    /// The hub's current port (nil while it is down: connections are refused).
    func retarget(_ port: UInt16?) { state.withLockedValue { $0.targetPort = port } }

    /// Faults for connections accepted from now on.
    func setFaults(_ faults: LinkFaults) { state.withLockedValue { $0.faults = faults } }

    /// Down: every open connection is reset and new ones are refused, until `setDown(false)`.
    func setDown(_ down: Bool) {
        state.withLockedValue {
            $0.down = down
            if down { $0.generation &+= 1 }
        }
    }

    /// Resets every open connection now; new ones are accepted as usual.
    func resetAll() {
        state.withLockedValue {
            $0.generation &+= 1
            $0.statistics.resetsByHarness += 1
        }
    }

    /// Closes the listener and every connection, and waits (bounded) for the threads to end.
    func stop() {
        state.withLockedValue {
            $0.stopped = true
            $0.generation &+= 1
        }
        _ = threads.wait(timeout: .now() + .seconds(10))
        Glibc.close(listenFD)
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    private func acceptLoop() {
        while !state.withLockedValue({ $0.stopped }) {
            var poller = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 50)
            guard ready > 0 else { continue }
            let client = Glibc.accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let decision = state.withLockedValue { state -> (target: UInt16, plan: ConnectionPlan, generation: UInt64)? in
                state.statistics.connections += 1
                let number = state.statistics.connections
                guard !state.down, let target = state.targetPort else {
                    state.statistics.refused += 1
                    return nil
                }
                var rng = state.rng.derived(UInt64(number))
                let faults = state.faults
                var plan = ConnectionPlan(number: number, faults: faults, rng: rng)
                if rng.chance(faults.cutProbability) {
                    plan.cutAfter = rng.logUniform(faults.maxCutOffset)
                    plan.cutWithReset = rng.chance(faults.resetProbability)
                    state.statistics.cuts += 1
                }
                if rng.chance(faults.stallProbability) {
                    plan.stallAt = rng.logUniform(faults.maxCutOffset)
                    plan.stallMilliseconds = rng.int(100...max(100, faults.maxStallMilliseconds))
                    state.statistics.stalls += 1
                }
                plan.rng = rng
                state.live += 1
                return (target, plan, state.generation)
            }
            guard let decision else {
                ChaosProxy.reset(client)
                continue
            }
            if decision.plan.cutAfter != nil || decision.plan.stallAt != nil {
                events("proxy \(name) conn#\(decision.plan.number) \(decision.plan.summary)")
            }
            threads.enter()
            let thread = Thread { [self] in
                self.pump(client: client, target: decision.target, plan: decision.plan, generation: decision.generation)
                self.state.withLockedValue { $0.live -= 1 }
                self.threads.leave()
            }
            thread.name = "chaos-proxy.\(name).\(decision.plan.number)"
            thread.start()
        }
    }

    /// Closes with a reset (SO_LINGER 0).
    private static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    private static func connect(port: UInt16) -> Int32? {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    private static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    private static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// One direction of a connection: bytes read and not yet written, and when they may go.
    private struct Direction {
        var from: Int32
        var to: Int32
        var pending: [UInt8] = []
        var offset = 0
        var releaseAt: Int64 = 0
        var readClosed = false
        var writeShut = false
        var hasPending: Bool { offset < pending.count }
    }

    private func pump(client: Int32, target: UInt16, plan: ConnectionPlan, generation: UInt64) {
        guard let server = ChaosProxy.connect(port: target) else {
            state.withLockedValue { $0.statistics.refused += 1 }
            ChaosProxy.reset(client)
            return
        }
        ChaosProxy.setNonBlocking(client)
        ChaosProxy.setNonBlocking(server)
        var rng = plan.rng
        var directions = [Direction(from: client, to: server), Direction(from: server, to: client)]
        var forwarded = 0
        var cutting = false
        var stalled = false
        var stallUntil: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        func finish(reset: Bool) {
            if reset {
                ChaosProxy.reset(client)
                ChaosProxy.reset(server)
            } else {
                _ = shutdown(client, Int32(SHUT_RDWR))
                _ = shutdown(server, Int32(SHUT_RDWR))
                Glibc.close(client)
                Glibc.close(server)
            }
        }
        while true {
            let (current, stopped) = state.withLockedValue { ($0.generation, $0.stopped) }
            if current != generation || stopped {
                finish(reset: true)
                return
            }
            let now = ChaosProxy.milliseconds()
            if cutting && !directions[0].hasPending && !directions[1].hasPending {
                finish(reset: plan.cutWithReset)
                return
            }
            if directions.allSatisfy({ $0.readClosed && !$0.hasPending }) {
                finish(reset: false)
                return
            }
            var pollers: [pollfd] = []
            var roles: [(direction: Int, reading: Bool)] = []
            for (index, direction) in directions.enumerated() {
                if direction.hasPending {
                    if now >= direction.releaseAt {
                        pollers.append(pollfd(fd: direction.to, events: Int16(POLLOUT), revents: 0))
                        roles.append((index, false))
                    }
                } else if !direction.readClosed && !cutting {
                    pollers.append(pollfd(fd: direction.from, events: Int16(POLLIN), revents: 0))
                    roles.append((index, true))
                }
            }
            let ready = pollers.isEmpty ? 0 : poll(&pollers, nfds_t(pollers.count), 20)
            if pollers.isEmpty { usleep(5_000) }  // only delayed bytes wait: nothing to poll until they are due
            guard ready > 0 else { continue }
            for (slot, poller) in pollers.enumerated() where poller.revents != 0 {
                let index = roles[slot].direction
                if roles[slot].reading {
                    let count = read(directions[index].from, &buffer, buffer.count)
                    if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                        if count < 0 {
                            // The peer reset: pass the reset on.
                            finish(reset: true)
                            return
                        }
                        directions[index].readClosed = true
                        if !directions[index].writeShut {
                            _ = shutdown(directions[index].to, Int32(SHUT_WR))
                            directions[index].writeShut = true
                        }
                        continue
                    }
                    guard count > 0 else { continue }
                    var take = count
                    if let cutAfter = plan.cutAfter, forwarded + take >= cutAfter {
                        take = max(0, cutAfter - forwarded)
                        cutting = true
                    }
                    var release = max(now, stallUntil)
                    if let stallAt = plan.stallAt, !stalled, forwarded + take >= stallAt {
                        stalled = true
                        stallUntil = now + Int64(plan.stallMilliseconds)
                        release = stallUntil
                    } else if rng.chance(plan.faults.delayProbability) {
                        release += Int64(rng.int(0...max(0, plan.faults.maxDelayMilliseconds)))
                    }
                    forwarded += take
                    directions[index].pending = Array(buffer[0..<take])
                    directions[index].offset = 0
                    directions[index].releaseAt = release
                    // A stall holds both directions.
                    for other in directions.indices where other != index && directions[other].hasPending {
                        directions[other].releaseAt = max(directions[other].releaseAt, stallUntil)
                    }
                    state.withLockedValue { $0.statistics.bytes += take }
                } else {
                    var direction = directions[index]
                    var size = direction.pending.count - direction.offset
                    if rng.chance(plan.faults.splitProbability) { size = min(size, rng.int(1...64)) }
                    let written = direction.pending.withUnsafeBufferPointer { bytes in
                        write(direction.to, bytes.baseAddress.map { $0 + direction.offset }, size)
                    }
                    if written < 0 && errno != EAGAIN && errno != EINTR {
                        finish(reset: true)
                        return
                    }
                    if written > 0 { direction.offset += written }
                    if !direction.hasPending {
                        direction.pending = []
                        direction.offset = 0
                    }
                    directions[index] = direction
                }
            }
        }
    }
}
