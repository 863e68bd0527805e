/// Why a network benchmark could not produce its figures. Messages name counts, codes and
/// addresses, never row contents.
enum BenchError: Error, CustomStringConvertible {
    /// The machine or the build is not set up for the benchmark (a missing binary, a limit).
    case setup(String)
    /// A peer broke the protocol or refused us.
    case protocolFailure(String)
    /// Something we waited for did not happen in time.
    case timeout(String)
    /// The run finished but its result is wrong (rows missing on the hub, say).
    case verification(String)
    /// A system call failed; `errno` as the call left it.
    case system(call: String, errno: Int32)

    var description: String {
        switch self {
        case .setup(let message): return "setup: \(message)"
        case .protocolFailure(let message): return "protocol: \(message)"
        case .timeout(let message): return "timed out: \(message)"
        case .verification(let message): return "verification failed: \(message)"
        case .system(let call, let errno): return "\(call) failed with errno \(errno)"
        }
    }
}
