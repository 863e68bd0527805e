import Foundation
import Synchronization

/// Severity of a log record, lowest first.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case debug, info, notice, warning, error

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warning"
        case .error: return "error"
        }
    }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = level
    }
}

/// One log event. Messages and metadata must never carry personal data (names, phone numbers):
/// log ids, counts, codes and addresses instead.
public struct LogRecord: Sendable {
    public var level: LogLevel
    public var label: String
    public var message: String
    public var metadata: [(String, String)]
}

/// Where records go.
public protocol LogSink: Sendable {
    func write(_ record: LogRecord)
}

/// A small structured logger. Libraries take one as a parameter and never build their own.
public struct Logger: Sendable {
    public var label: String
    public var minimumLevel: LogLevel
    public let sink: any LogSink

    public init(label: String, minimumLevel: LogLevel = .info, sink: any LogSink = StandardErrorSink.shared) {
        self.label = label
        self.minimumLevel = minimumLevel
        self.sink = sink
    }

    /// A logger for a sub-component, writing to the same sink at the same level.
    public func child(_ label: String) -> Logger {
        Logger(label: self.label + "." + label, minimumLevel: minimumLevel, sink: sink)
    }

    /// Discards everything (for callers that do not care).
    public static let discarding = Logger(label: "discard", minimumLevel: .error, sink: DiscardingSink())

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        guard level >= minimumLevel else { return }
        sink.write(LogRecord(level: level, label: label, message: message(), metadata: metadata()))
    }

    public func debug(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        log(.debug, message(), metadata())
    }

    public func info(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        log(.info, message(), metadata())
    }

    public func notice(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        log(.notice, message(), metadata())
    }

    public func warning(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        log(.warning, message(), metadata())
    }

    public func error(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> [(String, String)] = []) {
        log(.error, message(), metadata())
    }
}

/// Writes one line per record to standard error: `time level label: message key=value ...`.
public final class StandardErrorSink: LogSink {
    public static let shared = StandardErrorSink()
    private let lock = NSLock()

    public func write(_ record: LogRecord) {
        var line = "\(Self.timestamp()) \(record.level) \(record.label): \(record.message)"
        for (key, value) in record.metadata { line += " \(key)=\(value)" }
        line += "\n"
        let bytes = Array(line.utf8)
        lock.lock()
        defer { lock.unlock() }
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(2, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                      Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(spec.tv_nsec / 1_000_000))
    }
}

/// Keeps records in memory, for tests that assert on what was logged.
public final class MemorySink: LogSink {
    private let stored = Mutex<[LogRecord]>([])

    public init() {}

    public func write(_ record: LogRecord) {
        stored.withLock { $0.append(record) }
    }

    public var records: [LogRecord] { stored.withLock { $0 } }
}

struct DiscardingSink: LogSink {
    func write(_ record: LogRecord) {}
}
