import Net

/// The fanout benchmark's passive live sessions, run by a child process of this executable
/// (`fanout-listeners`, see `FanoutListenerProcess`), or none when every terminal is an agent.
struct PassiveFleet {
    /// What one write did in the fleet.
    struct Settled {
        /// When the last session whose scope holds the write pulled it (nil: none does).
        var lastExpectedAt: UInt64?
        /// How many sessions pulled the write (all that were notified of it).
        var pulled: Int
        /// The child's CPU time so far.
        var cpu: UInt64
    }

    let count: Int
    private let child: ChildProcess?

    /// Starts the child and waits until all `count` sessions are live.
    init(count: Int, firstTerminal: Int, scope: BenchScope, hub: SocketAddress) throws {
        self.count = count
        guard count > 0 else {
            child = nil
            return
        }
        let child = try ChildProcess(executable: ChildProcess.currentExecutable, arguments: [
            "fanout-listeners", "--hub", "\(hub)", "--count", "\(count)", "--first-terminal", "\(firstTerminal)",
            "--scope", scope.rawValue,
        ])
        self.child = child
        try expect(child, "ready")
    }

    /// Watch for sessions to pull past `sequence` (call before the write).
    func arm(after sequence: UInt64) throws {
        guard let child else { return }
        try child.send("arm \(sequence)")
        try expect(child, "armed")
    }

    /// Waits until the sessions holding the write have it and the fleet is quiet again.
    func waitSettled() throws -> Settled {
        guard let child else { return Settled(lastExpectedAt: nil, pulled: 0, cpu: 0) }
        try child.send("wait")
        let line = try child.readLine(timeout: .seconds(90))
        let words = line.split(separator: " ")
        guard words.count == 4, words[0] == "settled", let time = UInt64(words[1]), let pulled = Int(words[2]),
              let cpu = UInt64(words[3]) else {
            throw BenchError.protocolFailure("passive sessions: \(line)")
        }
        return Settled(lastExpectedAt: time == 0 ? nil : time, pulled: pulled, cpu: cpu)
    }

    func stop() {
        guard let child else { return }
        try? child.send("stop")
        child.terminate()
    }

    private func expect(_ child: ChildProcess, _ answer: String) throws {
        let line = try child.readLine(timeout: .seconds(90))
        guard line == answer else { throw BenchError.protocolFailure("passive sessions: \(line)") }
    }
}
