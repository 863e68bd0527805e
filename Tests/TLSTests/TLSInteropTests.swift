import Crypto
import Foundation
import Glibc
import XCTest
@testable import TLS

/// A client written in Python with its standard `ssl` module completes a mutual TLS 1.3
/// handshake with our server engine over a real loopback socket, using the files Crypto wrote:
/// the spec in CERTIFICATES.md is enough for another language. Skipped without python3.
final class TLSInteropTests: XCTestCase {
    func testPythonClientHandshakesWithOurServer() throws {
        let fixture = try TLSFixture()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try fixture.ca.certificate.write(toFile: directory.appendingPathComponent("ca.pem").path)
        try fixture.terminalCertificate.write(toFile: directory.appendingPathComponent("cert.pem").path)
        try fixture.terminalKey.write(toFile: directory.appendingPathComponent("key.pem").path)

        let listener = try LoopbackListener()
        defer { listener.close() }

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python_tls_client.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "\(listener.port)", directory.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw XCTSkip("cannot run python3: \(error)")
        }

        // Wait for the connection, or for the child to give up (missing python3: exit 127).
        var connection: Int32?
        let deadline = Date().addingTimeInterval(60)
        while connection == nil, Date() < deadline {
            connection = try listener.accept(waitingMilliseconds: 200)
            if connection == nil, !process.isRunning { break }
        }
        guard let fd = connection else {
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if process.terminationStatus == 77 || process.terminationStatus == 127 {
                throw XCTSkip("python3 or its cryptography package is missing: \(text)")
            }
            return XCTFail("python client never connected (status \(process.terminationStatus)): \(text)")
        }
        defer { Glibc.close(fd) }

        let engine = try TLSEngine(context: try fixture.server())
        var received: [UInt8] = []
        var answered = false
        var sawCloseNotify = false
        var failure: TLSError?
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        serving: while Date() < deadline {
            // Flush whatever the engine produced (handshake flights, the answer, alerts).
            let outbound = engine.takeOutbound()
            if !outbound.isEmpty { try writeAll(fd, outbound) }
            if failure != nil || sawCloseNotify { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready == 0 { continue }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return XCTFail("read failed: errno \(errno)")
            }
            do throws(TLSError) {
                if count == 0 {
                    engine.receiveEndOfStream()
                } else {
                    try engine.receive(Array(buffer[0..<count]))
                }
                reading: while true {
                    switch try engine.read() {
                    case .plaintext(let bytes):
                        received += bytes
                    case .needMoreBytes, .flushOutbound:
                        break reading
                    case .closed:
                        sawCloseNotify = true
                        _ = try engine.close()
                        break reading
                    }
                }
                if !answered, received == Array("ping".utf8) {
                    XCTAssertEqual(try engine.write(Array("pong".utf8)), .wrote(4))
                    answered = true
                }
            } catch {
                failure = error
            }
            if count == 0 { break serving }
        }
        let flushed = engine.takeOutbound()
        if !flushed.isEmpty { try? writeAll(fd, flushed) }

        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertNil(failure, text)
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("OK"), text)
        XCTAssertEqual(received, Array("ping".utf8))
        XCTAssertTrue(sawCloseNotify, "the Python client closes with close_notify")
        XCTAssertEqual(engine.peerIdentity?.role, .terminal)
        XCTAssertEqual(engine.peerIdentity?.scope, .store("S01"))
    }
}

private struct SocketFailure: Error {
    let call: String
    let code: Int32
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
        }
        if written < 0 {
            if errno == EINTR { continue }
            throw SocketFailure(call: "send", code: errno)
        }
        offset += written
    }
}

/// A blocking TCP listener on 127.0.0.1, port 0 (the kernel picks a free one).
private final class LoopbackListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(call: "bind/listen", code: code)
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(call: "getsockname", code: code)
        }
        self.fd = fd
        self.port = UInt16(bigEndian: address.sin_port)
    }

    /// A connection, or nil if none arrived within the wait.
    func accept(waitingMilliseconds: Int32) throws -> Int32? {
        var poller = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, waitingMilliseconds) > 0 else { return nil }
        let connection = Glibc.accept(self.fd, nil, nil)
        guard connection >= 0 else { throw SocketFailure(call: "accept", code: errno) }
        return connection
    }

    func close() {
        Glibc.close(self.fd)
    }
}
