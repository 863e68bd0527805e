import Foundation

/// A child process spoken to in lines: commands on its standard input, answers on its standard
/// output; its standard error is ours. Used to keep a hub's memory, or a fleet of clients' CPU,
/// apart from the benchmark process.
final class ChildProcess {
    let process: Process
    private let input: FileHandle
    private let outputDescriptor: Int32
    private var pending: [UInt8] = []

    init(executable: String, arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchError.setup("no executable at \(executable)")
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        input = stdin.fileHandleForWriting
        outputDescriptor = stdout.fileHandleForReading.fileDescriptor
    }

    deinit { terminate() }

    var pid: Int32 { process.processIdentifier }

    /// This benchmark's own executable, to run one of its hidden child commands.
    static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func send(_ line: String) throws {
        do {
            try input.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw BenchError.protocolFailure("the child process \(pid) stopped reading its input")
        }
    }

    /// The next line the child printed, without its newline.
    func readLine(timeout: Duration) throws -> String {
        let deadline = monotonicNanos() + UInt64(timeout.components.seconds) * 1_000_000_000
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            let now = monotonicNanos()
            guard now < deadline else { throw BenchError.timeout("no answer from the child process \(pid)") }
            var descriptor = pollfd(fd: outputDescriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(1_000, (deadline - now) / 1_000_000 + 1)))
            if ready < 0 && errno != EINTR { throw BenchError.system(call: "poll", errno: errno) }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4_096)
            let count = chunk.withUnsafeMutableBytes { read(outputDescriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw BenchError.protocolFailure("the child process \(pid) exited or closed its output") }
            pending.append(contentsOf: chunk[..<count])
        }
    }

    /// Asks the child to stop (SIGTERM), then kills it if it is still running after 5 s.
    func terminate() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicNanos() + 5_000_000_000
        while process.isRunning && monotonicNanos() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// User plus system CPU time of this process so far, in nanoseconds.
func processCPUNanoseconds() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func nanos(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1_000 }
    return nanos(usage.ru_utime) + nanos(usage.ru_stime)
}
