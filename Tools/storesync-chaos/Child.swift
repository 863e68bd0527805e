import Dispatch
import Foundation
import Glibc
import LockBox

/// How a child process ended.
enum ChildExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// A failure to start or supervise a child.
struct ChildFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Child processes through posix_spawn and waitpid: a pid is a plain value (Sendable), signals
/// go straight to it, and every wait has a deadline. Standard output goes to a file the harness
/// reads; standard error is appended to a node's log.
enum Child {
    /// Every child not yet reaped, so an interrupted harness leaves no hub behind.
    static let running = LockBox<Set<pid_t>>([])

    /// On SIGINT or SIGTERM: SIGKILL every child, then exit 130.
    static func killChildrenOnInterrupt() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                for pid in running.withLockedValue({ $0 }) {
                    _ = Glibc.kill(pid, SIGKILL)
                    _ = Glibc.kill(pid, SIGCONT)
                }
                FileHandle.standardError.write(Data("storesync-chaos: interrupted; children killed\n".utf8))
                exit(130)
            }
            source.resume()
            return source
        }
    }

    static func spawn(_ executable: String, _ arguments: [String], stdout: String, stderr: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard code == 0 else { throw ChildFailure("posix_spawn \(executable) failed: errno \(code)") }
        running.withLockedValue { _ = $0.insert(pid) }
        return pid
    }

    /// The child's exit if it has ended (reaping it), nil while it runs.
    static func poll(_ pid: pid_t) -> ChildExit? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return nil }
        running.withLockedValue { _ = $0.remove(pid) }
        if result < 0 { return .exited(-1) }  // already reaped or not ours: treat as gone
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signaled(status & 0x7f)
    }

    /// Waits until the child ends or the deadline passes (nil then; the child keeps running).
    static func wait(_ pid: pid_t, until deadline: Date) -> ChildExit? {
        var pause: UInt32 = 1_000
        while true {
            if let exit = poll(pid) { return exit }
            if Date() >= deadline { return nil }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
    }

    /// Kills with SIGKILL and reaps (a killed child always ends: the wait is short).
    @discardableResult
    static func kill(_ pid: pid_t) -> ChildExit {
        _ = Glibc.kill(pid, SIGKILL)
        _ = Glibc.kill(pid, SIGCONT)
        return wait(pid, until: Date().addingTimeInterval(30)) ?? .signaled(SIGKILL)
    }

    /// Runs to completion within `timeout` seconds (killed after it); returns the exit and stdout.
    /// With `killAfter`, the child gets SIGKILL at that moment if it still runs (a crash mid-write).
    static func run(_ executable: String, _ arguments: [String], scratch: String, stderr: String,
                    timeout: TimeInterval, killAfter: TimeInterval? = nil) throws -> (exit: ChildExit, stdout: String, timedOut: Bool) {
        let pid = try spawn(executable, arguments, stdout: scratch, stderr: stderr)
        var timedOut = false
        var exit: ChildExit
        if let killAfter, let ended = wait(pid, until: Date().addingTimeInterval(killAfter)) {
            exit = ended
        } else if killAfter != nil {
            exit = kill(pid)
        } else if let ended = wait(pid, until: Date().addingTimeInterval(timeout)) {
            exit = ended
        } else {
            timedOut = true
            exit = kill(pid)
        }
        let output = (try? String(contentsOfFile: scratch, encoding: .utf8)) ?? ""
        unlink(scratch)
        return (exit, output, timedOut)
    }
}
