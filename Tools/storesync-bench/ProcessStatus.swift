import Foundation

/// Figures of a process from `/proc/<pid>/status`.
struct ProcessStatus {
    /// Resident memory (`VmRSS`), in KiB.
    var residentKiB: Int
    var threads: Int

    /// Reads `/proc/<pid>/status` (`pid` nil: this process).
    init(pid: Int32?) throws {
        let path = "/proc/\(pid.map(String.init) ?? "self")/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BenchError.setup("cannot read \(path)")
        }
        func field(_ name: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
        }
        guard let resident = field("VmRSS"), let threads = field("Threads") else {
            throw BenchError.setup("\(path) has no VmRSS or Threads line")
        }
        residentKiB = resident
        self.threads = threads
    }
}

/// Raises this process's soft descriptor limit (RLIMIT_NOFILE) to its hard limit, which child
/// processes inherit; returns the new soft limit.
func raiseDescriptorLimit() throws -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw BenchError.system(call: "getrlimit", errno: errno) }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw BenchError.system(call: "setrlimit", errno: errno) }
    }
    return Int(clamping: limit.rlim_cur)
}
