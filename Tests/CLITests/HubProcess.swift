import Foundation
import XCTest

/// A `storesync hub` child process: started, its bound address read from its "listening on"
/// line, signalled, and waited for, every wait with a deadline.
final class HubProcess {
    let process = Process()
    let logURL: URL
    private(set) var address = ""
    private let output = Pipe()
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `storesync hub ARGUMENTS` and waits up to `timeout` seconds for it to listen.
    init(_ arguments: [String], logURL: URL, timeout: TimeInterval = 30) throws {
        self.logURL = logURL
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = try StoresyncBinary.url()
        process.arguments = ["hub"] + arguments
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: logURL)
        let exited = self.exited
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        address = try readListeningAddress(timeout: timeout)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    private func readListeningAddress(timeout: TimeInterval) throws -> String {
        let descriptor = output.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        while Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready > 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { break }
                text += String(decoding: buffer[0..<count], as: UTF8.self)
                if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) {
                    return String(line.dropFirst("listening on ".count))
                }
            }
        }
        throw HubProcessError("the hub printed no address within \(timeout) s; output: \(text); log: \(log)")
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to end; returns its exit status (or the signal that ended it).
    @discardableResult
    func waitForExit(timeout: TimeInterval = 30) throws -> Int32 {
        guard exited.wait(timeout: .now() + timeout) == .success else {
            throw HubProcessError("the hub did not exit within \(timeout) s; log: \(log)")
        }
        return process.terminationStatus
    }
}

struct HubProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
