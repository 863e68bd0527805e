import Dispatch
import Foundation
import Hub
import LockBox
import Logging
import Net
import Retail
import RetailHub
import SyncEngine
import Terminal

/// SIGINT and SIGTERM, caught from the moment this is made (delivered through Dispatch, never
/// in a raw signal handler): made before a command announces it is ready ("listening on"), so
/// a supervisor that stops it right after is never met by the default action (death, no drain).
final class TerminationSignals {
    private let received = DispatchSemaphore(value: 0)
    private let caught = LockBox(Int32(0))
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [received, caught] in
                caught.withLockedValue { $0 = number }
                received.signal()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Waits for the first of them; returns its number.
    func wait() -> Int32 {
        received.wait()
        for source in sources { source.cancel() }
        return caught.withLockedValue { $0 }
    }
}

private func parseAddress(_ text: String, option: String) throws -> SocketAddress {
    do {
        return try SocketAddress.parse(text)
    } catch {
        throw UsageError(message: "--\(option) must be HOST:PORT, got \(text)")
    }
}

/// `storesync sync --db PATH --hub HOST:PORT [--live] [--format text|json] [--log-level L]`
func runSync(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "hub", "live", "format", "log-level", "timeout-s"])
    let path = try arguments.required("db")
    let address = try parseAddress(try arguments.required("hub"), option: "hub")
    let format = arguments.optional("format") ?? "text"
    guard format == "text" || format == "json" else { throw UsageError(message: "--format is text or json") }
    let timeout = try arguments.integer("timeout-s", default: 30, range: 1...3600)
    let logger = try makeLogger(arguments, label: "storesync.sync")
    let replica = try openReplica(path)
    let settings = try NodeSettings.read(replica)
    var options = SyncOptions(hub: address, scope: settings.scope)
    options.role = settings.kind.role
    options.replyTimeout = .seconds(timeout)
    options.widestTableColumns = RetailSchema.widestTableColumns
    options.pushOnlyLocalWrites = settings.kind == .terminal

    if !arguments.flag("live") {
        let report: SyncReport
        do {
            report = try SyncClient(replica: replica, options: options, logger: logger).syncOnce()
        } catch {
            throw CommandError("sync with \(address) failed: \(error)", kind: Failure.kind(of: error))
        }
        if let hub = report.hubReplica { try replica.setSetting("upstream_replica", .blob(hub.bytes)) }
        try recordSuccessfulSync(replica)
        printReport(report, format: format)
        return
    }

    let signals = TerminationSignals()
    // One live agent per file: a second would push the same rows as the same peer.
    let lock = try lockReplica(path)
    defer { withExtendedLifetime(lock) {} }
    let agent = LiveSyncAgent(replica: replica, options: options, logger: logger) { event in
        switch event {
        case .connected(let hub):
            try? replica.setSetting("upstream_replica", .blob(hub.bytes))
            logger.notice("connected", [("hub", "\(address)")])
        case .synced(let report):
            try? recordSuccessfulSync(replica)
            logger.info("in sync", [("pushed_rows", "\(report.pushedRows)"), ("pulled_rows", "\(report.pulledRows)"),
                                    ("push_cursor", "\(report.pushCursor)"), ("pull_cursor", "\(report.pullCursor)")])
        case .disconnected(let failure):
            logger.warning("disconnected", [("error", "\(failure)")])
        case .backingOff(let wait):
            logger.info("reconnecting later", [("in_ms", "\(milliseconds(wait))")])
        }
    }
    // Writes by other processes (guides' commands) wake the agent within milliseconds.
    let watcher = try ReplicaChangeWatcher(path: path) { agent.localWriteCommitted() }
    agent.start()
    let signal = signals.wait()
    logger.notice("stopping", [("signal", "\(signal)")])
    watcher.stop()
    agent.stop()
    closeOnStop(replica, logger: logger)
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

private func recordSuccessfulSync(_ replica: Replica) throws {
    try replica.setSetting("last_sync_ms", .integer(Int64(bitPattern: replica.clock.wallMilliseconds())))
}

private func printReport(_ report: SyncReport, format: String) {
    if format == "json" {
        print("{\"hub\":\"\(report.hub)\",\"pushed_batches\":\(report.pushedBatches),\"pushed_rows\":\(report.pushedRows),"
              + "\"pulled_batches\":\(report.pulledBatches),\"pulled_rows\":\(report.pulledRows),\"changed_rows\":\(report.changedRows),"
              + "\"push_cursor\":\(report.pushCursor),\"pull_cursor\":\(report.pullCursor),\"restamped_rows\":\(report.restampedRows)}")
    } else {
        print("synced with \(report.hub): pushed \(report.pushedRows) rows in \(report.pushedBatches) batches, "
              + "pulled \(report.pulledRows) rows in \(report.pulledBatches) batches (\(report.changedRows) changed here)")
    }
}

/// `storesync hub --db PATH --listen HOST:PORT [--max-connections N] [--idle-timeout-s N]
///  [--handshake-timeout-s N] [--upstream HOST:PORT] [--log-level L]`
func runHub(_ arguments: Arguments) throws {
    try arguments.rejectUnknown(allowed: ["db", "listen", "max-connections", "idle-timeout-s", "handshake-timeout-s",
                                          "upstream", "log-level", "format"])
    // --format json: a failure to start is one JSON object on standard output (main.swift).
    _ = try OutputFormat(arguments)
    let path = try arguments.required("db")
    var configuration = HubConfiguration(listenAddress: try parseAddress(try arguments.required("listen"), option: "listen"))
    configuration.maxConnections = try arguments.integer("max-connections", default: 20_000, range: 1...1_000_000)
    configuration.idleTimeout = .seconds(try arguments.integer("idle-timeout-s", default: 120, range: 1...86_400))
    configuration.handshakeTimeout = .seconds(try arguments.integer("handshake-timeout-s", default: 10, range: 1...3_600))
    configuration.widestTableColumns = RetailSchema.widestTableColumns
    let logger = try makeLogger(arguments, label: "storesync.hub")
    let replica = try openReplica(path)
    let settings = try NodeSettings.read(replica)
    guard settings.kind != .terminal else {
        throw CommandError("\(path) is a terminal replica; run a hub on a replica made with `storesync init --hub` or `--hq`")
    }
    let upstream = try arguments.optional("upstream").map { try parseAddress($0, option: "upstream") }
    guard let ownScope = NodeScope(settings.scope) else {
        throw CommandError("\(path) has an unknown scope \(settings.scope)")
    }
    if upstream != nil && settings.kind != .hub {
        throw UsageError(message: "--upstream is for a regional hub (a replica made with `storesync init --hub`)")
    }
    let signals = TerminationSignals()
    // One hub per file: a second would serve (and relay) the same replica as the same peer.
    let lock = try lockReplica(path)
    defer { withExtendedLifetime(lock) {} }
    let descriptors = raiseDescriptorLimit()
    if descriptors < UInt64(configuration.maxConnections) {
        logger.warning("the descriptor limit is below --max-connections; raise it (ulimit -n, LimitNOFILE=)",
                       [("limit", "\(descriptors)"), ("max_connections", "\(configuration.maxConnections)")])
    }
    var options = RetailHubNode.Options(configuration: configuration)
    options.upstream = upstream
    let node: RetailHubNode
    do {
        node = try RetailHubNode(replica: replica, scope: ownScope, options: options, logger: logger)
    } catch {
        throw CommandError("cannot listen on \(configuration.listenAddress): \(error)", kind: Failure(error).kind)
    }
    node.start()
    // Scripts (and tests) read the bound port from this line when they asked for port 0.
    print("listening on \(node.boundAddress)")
    fflush(nil)
    let signal = signals.wait()
    logger.notice("draining", [("signal", "\(signal)")])
    node.stop()
    closeOnStop(replica, logger: logger)
}

/// Raises the soft descriptor limit to the hard one (a hub holds one descriptor per terminal)
/// and returns the limit in force.
private func raiseDescriptorLimit() -> UInt64 {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
    }
    return UInt64(limit.rlim_cur)
}
