import Foundation
import Glibc
import Synchronization

/// One process per replica file, by agreement: an advisory lock (`flock`) on `<replica>.lock`
/// beside the file, which names its holder (pid and command) for whoever finds it taken.
///
/// `Replica.init` does not take it: a guide's one-shot commands must still write beside a live
/// sync (SQLite serialises their transactions). Long-running owners of a file take it: a hub and
/// `sync --live`. The lock is released by `release()`, when the lock object goes away, or when
/// the process ends however it ends (the kernel drops it with the descriptor), so a crash never
/// leaves a stale lock; the lock file itself stays (removing it would race another acquirer).
public final class ReplicaLock: Sendable {
    /// Who holds a lock, as its holder wrote it into the lock file.
    public struct Holder: Sendable, Hashable, CustomStringConvertible {
        public var pid: Int32
        public var command: String

        public init(pid: Int32, command: String) {
            self.pid = pid
            self.command = command
        }

        public var description: String { "process \(pid) (\(command))" }
    }

    /// The lock file: `<replica path>.lock`.
    public let lockPath: String
    public let holder: Holder
    /// The open descriptor holding the lock; -1 once released.
    private let descriptor: Mutex<Int32>

    private init(lockPath: String, holder: Holder, descriptor: Int32) {
        self.lockPath = lockPath
        self.holder = holder
        self.descriptor = Mutex(descriptor)
    }

    deinit { release() }

    public static func lockPath(forReplicaAt path: String) -> String { path + ".lock" }

    /// Takes the lock of the replica at `path` for this process, or throws
    /// `ReplicaFileError.locked` naming the current holder. `command` says what holds it
    /// ("storesync hub --db terminal.sqlite"); one line, kept short.
    public static func acquire(path: String, holder command: String) throws(ReplicaFileError) -> ReplicaLock {
        let lockPath = lockPath(forReplicaAt: path)
        let descriptor = try systemCall("open", path: lockPath) { open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        do throws(ReplicaFileError) {
            var result = flock(descriptor, LOCK_EX | LOCK_NB)
            while result != 0 && errno == EINTR { result = flock(descriptor, LOCK_EX | LOCK_NB) }
            if result != 0 {
                let code = errno
                if code == EWOULDBLOCK {
                    throw ReplicaFileError.locked(path: path, holder: readHolder(descriptor))
                }
                throw ReplicaFileError.system(operation: "flock", path: lockPath, errno: code)
            }
            let holder = Holder(pid: getpid(), command: String(command.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(200)))
            // Ours now: replace whatever a previous holder wrote.
            try systemCall("ftruncate", path: lockPath) { ftruncate(descriptor, 0) }
            let text = Array("\(holder.pid)\n\(holder.command)\n".utf8)
            let written = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
            guard written == text.count else {
                throw ReplicaFileError.system(operation: "write", path: lockPath, errno: written < 0 ? errno : EIO)
            }
            return ReplicaLock(lockPath: lockPath, holder: holder, descriptor: descriptor)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// The holder the lock file names, if the lock is held now (nil when free or unreadable).
    public static func currentHolder(path: String) -> Holder? {
        let lockPath = lockPath(forReplicaAt: path)
        let descriptor = open(lockPath, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        // A shared lock is granted only when nobody holds the exclusive one.
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return nil
        }
        return readHolder(descriptor)
    }

    /// Releases the lock (idempotent).
    public func release() {
        descriptor.withLock { descriptor in
            guard descriptor >= 0 else { return }
            // Closing the only descriptor of the open file description drops the flock.
            close(descriptor)
            descriptor = -1
        }
    }

    /// Reads "pid\ncommand\n"; nil when the holder has not written it yet or it is malformed.
    private static func readHolder(_ descriptor: Int32) -> Holder? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let lines = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 2, let pid = Int32(lines[0]) else { return nil }
        return Holder(pid: pid, command: String(lines[1]))
    }
}
