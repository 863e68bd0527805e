import Foundation
import Retail
import SyncEngine

/// `storesync-bench conns`: how many idle terminal sessions one hub holds, and the hub's
/// resident memory per session. The hub is the real `storesync hub` in a child process, so its
/// `VmRSS` (from `/proc/<pid>/status`) holds nothing of the clients; the clients are raw
/// non-blocking sockets in this process that each complete the HELLO / HELLO_ACK handshake and
/// then stay silent (sessions, not just accepted sockets).
///
/// Targets from the issue: 10,000 concurrent sessions at ≤ 32 KiB resident memory each, with no
/// thread per connection (the process hard descriptor limit is 20,000).
struct ConnsBenchmark {
    var connections: Int
    var hubBinary: String?
    var reporter: FigureReporter

    static let targetConnections = 10_000
    static let targetKiBPerConnection = 32.0

    func run() throws {
        let descriptorLimit = try raiseDescriptorLimit()
        guard connections + 64 <= descriptorLimit else {
            throw BenchError.setup("\(connections) connections need more descriptors than the limit of \(descriptorLimit)")
        }
        let binary = hubBinary ?? URL(fileURLWithPath: ChildProcess.currentExecutable)
            .deletingLastPathComponent().appendingPathComponent("storesync").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError.setup("no storesync binary at \(binary): build it (swift build -c release --product storesync, with the same --scratch-path) or pass --hub-binary PATH")
        }
        let scratch = try ScratchDirectory("conns")
        defer { scratch.remove() }
        let database = scratch.path("hub.sqlite")
        try runToCompletion(binary, ["init", "--db", database, "--hub", "--region", Self.region])
        try registerStores(in: database)

        let hub = try ChildProcess(executable: binary, arguments: [
            "hub", "--db", database, "--listen", "127.0.0.1:0", "--max-connections", "\(connections + 16)", "--log-level", "warning",
        ])
        defer { hub.terminate() }
        let port = try listeningPort(hub)
        usleep(300_000)
        let hubBefore = try ProcessStatus(pid: hub.pid)
        let selfBefore = try ProcessStatus(pid: nil)

        let clients = HandshakeClients(port: port)
        defer { clients.closeAll() }
        let seconds = try measureSeconds {
            try clients.open(connections) { established in
                if established % 2_000 == 0 || established == connections { reporter.progress("\(established) sessions established") }
            }
        }
        // Let the hub finish whatever the handshakes left (log buffers, timers) before sampling.
        usleep(1_000_000)
        let hubAfter = try ProcessStatus(pid: hub.pid)
        let selfAfter = try ProcessStatus(pid: nil)
        let dropped = clients.countDropped()
        let held = clients.established - dropped
        let pingMilliseconds = try clients.pingFirst()

        let failures = clients.failures.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", ")
        reporter.header("storesync-bench conns: \(connections) idle terminal sessions on one `storesync hub` child process", notes: [
            "hub: \(binary) (pid \(hub.pid)); descriptor limit \(descriptorLimit) (soft raised to hard); sessions opened in waves of 500 in \(formatNumber(seconds, decimals: 2)) s",
            "hub VmRSS \(hubBefore.residentKiB) KiB → \(hubAfter.residentKiB) KiB, threads \(hubBefore.threads) → \(hubAfter.threads); client side (this process) VmRSS \(selfBefore.residentKiB) → \(selfAfter.residentKiB) KiB; kernel socket buffers are not in VmRSS",
            "failed: \(failures.isEmpty ? "none" : failures); dropped by the hub after the handshake: \(dropped); load average \(loadAverage())",
        ])
        let held64 = Double(held)
        let perConnection = held > 0 ? Double(hubAfter.residentKiB - hubBefore.residentKiB) / held64 : 0
        let counts = [("connections", "\(connections)"), ("held", "\(held)")]
        reporter.emit(Figure(scenario: "conns_held", value: held64, unit: "sessions",
                             target: connections >= Self.targetConnections ? .atLeast(Double(Self.targetConnections)) : nil, details: counts))
        reporter.emit(Figure(scenario: "hub_rss_per_connection", value: perConnection, unit: "KiB",
                             target: .atMost(Self.targetKiBPerConnection),
                             details: counts + [("hub_rss_before_kib", "\(hubBefore.residentKiB)"), ("hub_rss_after_kib", "\(hubAfter.residentKiB)")]))
        reporter.emit(Figure(scenario: "hub_threads_added", value: Double(hubAfter.threads - hubBefore.threads), unit: "threads", target: nil,
                             details: counts + [("hub_threads_before", "\(hubBefore.threads)"), ("hub_threads_after", "\(hubAfter.threads)")]))
        reporter.emit(Figure(scenario: "client_rss_per_connection", value: held > 0 ? Double(selfAfter.residentKiB - selfBefore.residentKiB) / held64 : 0,
                             unit: "KiB", target: nil, details: counts))
        reporter.emit(Figure(scenario: "ping_with_all_held", value: pingMilliseconds, unit: "ms", target: nil, details: counts))
    }

    static let region = "R01"
    /// The stores the hub serves; session `i` asks for store `i % storeCount + 1`.
    static let storeCount = 1_000

    /// A regional hub grants `store:ID` only for stores registered in its region: the `stores`
    /// rows, written here as HQ's reference data would arrive.
    private func registerStores(in path: String) throws {
        let replica = try Replica(path: path, schema: RetailSchema.all)
        guard let name = RetailSchema.stores.columns.first(where: { $0.name.rawValue == "name" })?.name,
              let region = RetailSchema.stores.columns.first(where: { $0.name.rawValue == "region" })?.name else {
            throw BenchError.setup("RetailSchema.stores has no name or region column")
        }
        try replica.write { tx in
            for store in 1...Self.storeCount {
                try tx.insert(into: RetailSchema.stores.name, primaryKey: storeID(store),
                              [name: .text("Store \(store)"), region: .text(Self.region)])
            }
        }
    }

    private func runToCompletion(_ binary: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError.setup("storesync \(arguments.first ?? "") exited with status \(process.terminationStatus)")
        }
    }

    /// The port from the hub's first line, `listening on HOST:PORT`.
    private func listeningPort(_ hub: ChildProcess) throws -> UInt16 {
        let line = try hub.readLine(timeout: .seconds(30))
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":"),
              let port = UInt16(line[line.index(after: colon)...]) else {
            throw BenchError.protocolFailure("unexpected first line from storesync hub: \(line)")
        }
        return port
    }
}
