import Foundation

/// Nanoseconds on the monotonic clock (the same clock `measureSeconds` uses).
func monotonicNanos() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// Percentiles of a set of durations, in milliseconds.
struct LatencySummary {
    var count: Int
    var p50: Double
    var p99: Double
    var max: Double

    /// Nearest-rank percentiles of `nanoseconds` (empty input gives zeros).
    init(nanoseconds: [UInt64]) {
        let sorted = nanoseconds.sorted()
        count = sorted.count
        func rank(_ percentile: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = Swift.min(sorted.count - 1, Swift.max(0, Int((percentile * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[index]) / 1e6
        }
        p50 = rank(0.50)
        p99 = rank(0.99)
        max = rank(1.0)
    }
}

/// The 1-minute load average, for the header of a noisy-machine measurement.
func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// How long `fsync` of a 4 KiB append takes in `directory` (median of 20): the floor of every
/// commit with `synchronous=FULL`, printed so latency figures can be read against it.
func fsyncMedianMilliseconds(in directory: URL) -> Double? {
    let path = directory.appendingPathComponent("fsync-probe").path
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return nil }
    defer {
        close(fd)
        unlink(path)
    }
    let block = [UInt8](repeating: 0x5A, count: 4096)
    var samples: [UInt64] = []
    for _ in 0..<20 {
        let written = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == block.count else { return nil }
        let start = monotonicNanos()
        guard fsync(fd) == 0 else { return nil }
        samples.append(monotonicNanos() - start)
    }
    return LatencySummary(nanoseconds: samples).p50
}

/// A fresh temporary directory for one benchmark run, removed by `remove()`.
struct ScratchDirectory {
    let url: URL

    init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("storesync-bench-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ file: String) -> String { url.appendingPathComponent(file).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// CPU time this process used so far (every thread, user and system), in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
