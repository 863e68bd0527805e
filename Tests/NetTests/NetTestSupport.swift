import Dispatch
import Foundation
import Glibc
import Logging
@testable import Net
import SyncEngine
import Synchronization
import Wire
import XCTest

let loopback = SocketAddress(host: "127.0.0.1", port: 0)
let testLogger = Logger(label: "net-test", minimumLevel: .error, sink: MemorySink())

func deadline(_ duration: Duration) -> DispatchTime {
    DispatchTime(uptimeNanoseconds: DispatchTime.now().uptimeNanoseconds + duration.clampedNanoseconds)
}

/// A few messages of different shapes, including a changeset with every value type.
func sampleMessages() throws -> [Message] {
    let replica = ReplicaID(high: 0x1111_1111_1111_1111, low: 0x2222_2222_2222_2222)
    let clock = HLCTimestamp(milliseconds: 1_767_225_600_000, counter: 3)
    let version = Version(hlc: clock, origin: replica)
    let changeset = Changeset(source: replica, fromSequence: 4, toSequence: 9, tables: [
        TableChanges(table: try TableName("visits"), columns: [try ColumnName("duration"), try ColumnName("photo"), try ColumnName("note")], rows: [
            RowChange(primaryKey: "V1", causalLength: 1, lifeVersion: version, cells: [
                Cell(column: 0, value: .integer(-42), version: version),
                Cell(column: 1, value: .blob(Array(repeating: 0xAB, count: 70_000)), version: version),
                Cell(column: 2, value: .real(4.5), version: version),
            ]),
        ]),
    ])
    return [
        .hello(Hello(protocolVersions: [1], replica: replica, role: .terminal, scope: "store:S001", clock: clock, credentials: [1, 2, 3])),
        .ping(nonce: 7),
        .push(changeset),
        .pull(Pull(fromSequence: 12, maxCells: 500, live: true)),
        .notify(latestSequence: 99),
        .error(ErrorMessage(code: .serverBusy, message: "full", retryAfterMilliseconds: 250)),
        .pong(nonce: UInt64.max),
    ]
}

/// Records what happens on the server side of a listener.
final class TestServer: Sendable {
    enum Behaviour: Sendable {
        case echo
        case ignore
    }

    /// What the handlers record; a class of its own so the handlers need not hold the server.
    final class Record: Sendable {
        let accepted = Mutex<[FramedConnection]>([])
        let closes = Mutex<[CloseReason]>([])
        let received = Mutex<Int>(0)
    }

    let listener: Listener
    let record = Record()
    let acceptSignal = DispatchSemaphore(value: 0)
    let closeSignal = DispatchSemaphore(value: 0)

    init(limits: ConnectionLimits = ConnectionLimits(), behaviour: Behaviour = .echo) throws {
        self.listener = try Listener(address: loopback, limits: limits, logger: testLogger)
        self.listener.start { [record, acceptSignal, closeSignal] connection in
            record.accepted.withLock { $0.append(connection) }
            connection.start(
                onMessage: { message in
                    record.received.withLock { $0 += 1 }
                    if case .echo = behaviour { connection.send(message) }
                },
                onClose: { reason in
                    record.closes.withLock { $0.append(reason) }
                    closeSignal.signal()
                }
            )
            acceptSignal.signal()
        }
    }

    var receivedCount: Int { self.record.received.withLock { $0 } }

    var port: UInt16 { self.listener.boundAddress.port }

    func waitForAccept(timeout: Duration = .seconds(10)) -> FramedConnection? {
        guard self.acceptSignal.wait(timeout: deadline(timeout)) == .success else { return nil }
        return self.record.accepted.withLock { $0.last }
    }

    /// Waits until `count` server connections in all have closed; returns their reasons in order.
    func waitForCloses(_ count: Int, timeout: Duration = .seconds(10)) -> [CloseReason] {
        let end = deadline(timeout)
        while self.record.closes.withLock({ $0.count }) < count {
            guard self.closeSignal.wait(timeout: end) == .success else { break }
        }
        return self.record.closes.withLock { $0 }
    }

    func close() {
        closeAndWait(self.listener)
    }
}

/// A plain blocking loopback socket, to write exact bytes and read exactly what comes back.
final class RawSocket {
    let fd: Int32

    init(port: UInt16) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetError(call: "socket", errno: errno) }
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
            throw NetError(call: "connect", errno: code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
    }

    deinit {
        Glibc.close(self.fd)
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(self.fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw NetError(call: "send", errno: errno)
            }
            offset += written
        }
    }

    func shutdownWrite() {
        Glibc.shutdown(self.fd, Int32(SHUT_WR))
    }

    /// Reads until the peer closes or `timeout` passes; returns the bytes and whether EOF came.
    func readUntilEndOfStream(timeout: Duration = .seconds(10)) -> (bytes: [UInt8], endOfStream: Bool) {
        var bytes: [UInt8] = []
        let end = deadline(timeout).uptimeNanoseconds
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return (bytes, false) }
            var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32((end - now) / 1_000_000 + 1))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return (bytes, false) }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(self.fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            // A reset after our data arrived counts as the end too.
            if count <= 0 { return (bytes, true) }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Reads until `count` whole messages have been decoded, or `timeout` passes.
    func readMessages(_ count: Int, timeout: Duration = .seconds(10)) throws -> [Message] {
        var decoder = FrameDecoder()
        var messages: [Message] = []
        let end = deadline(timeout).uptimeNanoseconds
        var chunk = [UInt8](repeating: 0, count: 65536)
        while messages.count < count {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { break }
            var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32((end - now) / 1_000_000 + 1))
            if ready <= 0 { continue }
            let read = chunk.withUnsafeMutableBytes { Glibc.read(self.fd, $0.baseAddress, $0.count) }
            if read <= 0 { break }
            decoder.feed(chunk[0..<read])
            while let message = try decoder.next() { messages.append(message) }
        }
        return messages
    }
}

/// Closes a listener and waits until its descriptor is closed, so later tests that count
/// descriptors see no late close.
func closeAndWait(_ listener: Listener) {
    let done = DispatchSemaphore(value: 0)
    listener.close { done.signal() }
    _ = done.wait(timeout: deadline(.seconds(10)))
}

func decodeAll(_ bytes: [UInt8]) throws -> [Message] {
    var decoder = FrameDecoder()
    decoder.feed(bytes)
    var messages: [Message] = []
    while let message = try decoder.next() { messages.append(message) }
    return messages
}

func openDescriptorCount() throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
}

func residentKilobytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}
