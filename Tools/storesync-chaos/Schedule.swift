import Foundation
import Glibc
import SQLite

struct ScheduleOptions: Sendable {
    var seed: UInt64
    /// Workload steps (bounded mode).
    var operations = 220
    /// Long mode: keep the workload running this long instead of `operations` steps.
    var minutes: Double?
    var binary: String
    var root: String
    var keep = false
    var verbose = false
    /// How long the heal may take to reach quiescence before it is a failure.
    var quiesceSeconds: Double = 240
    /// SIGKILL and restart hubs (off in long mode unless asked, so resources are one process's).
    var killHubs = true
    /// Expected faults per schedule (hubs, links, syncs), spread over the steps.
    var faultsPerSchedule = 15
    /// Damages the files after the run, before the checks, to show the checker notices.
    var tamper: Tamper?
    /// What the binary under test supports (`Capabilities.probe`).
    var capabilities = Capabilities()
    /// Hubs restored from an online `storesync backup` now and then (needs `backup`).
    var restoreFaults = false
}

/// Deliberate damage the checker must report (its own test: a checker that cannot fail proves nothing).
enum Tamper: String, CaseIterable, Sendable {
    /// Deletes an acknowledged visit from the regional hub's table: [lost] and [convergence].
    case dropRow = "drop-row"
    /// Changes a lead's source on one terminal: [convergence] and [lost-update].
    case changeField = "change-field"
    /// Copies a sale line at HQ under a new id: [doubled/lost], [views] and [convergence].
    case duplicateSale = "duplicate-sale"
}

struct ScheduleSummary: Sendable {
    var seed: UInt64
    var failures: [String]
    var operations: Int
    var acknowledged: Int
    var faults: Int
    var syncs: Int
    var seconds: Double
    var directory: String
    var resources: [String]
    var passed: Bool { failures.isEmpty }
}

/// What the harness later does by itself (a hub restarted, a link back up).
private enum Deferred {
    case restartHub(HubNode)
    case continueHub(HubNode)
    case linkUp(ChaosProxy)
    case baseline(ChaosProxy)
    case restartLive(TerminalNode)
    /// SIGKILL the hub, put the backup taken at `sequence` in place of its file, start it again.
    case restoreHub(HubNode, backup: String, sequence: Int)
}

/// A lead as the workload knows it.
private struct LeadState {
    var id: String
    var store: String
    var creator: String
    /// The target of the last acknowledged stage move (`reached` at creation).
    var stage: String
    var phone: String
    /// Each terminal's last acknowledged move of the lead.
    var stageBy: [String: String] = [:]
}

private let funnel = ["reached", "needs-confirmed", "demo", "negotiation", "won"]
private let skus = ["TV-55", "PH-12", "LAP-3"]
/// TV-55 (which has thresholds from the start) half the time, so crossings and promotions happen.
private func pickSKU(_ rng: inout Rng) -> String { rng.chance(0.5) ? "TV-55" : (rng.pick(skus) ?? "TV-55") }

/// One schedule: a topology of real `storesync` processes on loopback, a workload through the
/// CLI, faults from the seed, a heal, and the checks. Single-threaded: the loop interleaves
/// operations (foreground CLI calls), background one-shot syncs, and faults; the proxies and
/// the processes supply the concurrency.
final class Schedule {
    let options: ScheduleOptions
    let history: History
    let directory: String
    private var rng: Rng
    private var stores: [StoreSpec] = []
    private let hq: HubNode
    private var regional: [String: HubNode] = [:]
    private var terminals: [TerminalNode] = []
    private var proxies: [ChaosProxy] = []
    private var baseline: [ObjectIdentifier: LinkFaults] = [:]
    private var log = WriteLog()
    private var leads: [LeadState] = []
    private var deferred: [(due: Date, action: Deferred)] = []
    private var faults = 0
    private var syncs = 0
    private var operations = 0
    private var scratch = 0
    private var resourceSamples: [String: [(minute: Double, rss: Int, fds: Int)]] = [:]
    private var lastSample = Date.distantPast
    private let started = Date()
    private var failures: [String] = []
    private var offlineTerminal: TerminalNode?
    private var offlineAfter = 0

    init(options: ScheduleOptions) throws {
        self.options = options
        rng = Rng(seed: options.seed)
        history = History(echo: options.verbose)
        directory = options.root + "/seed-\(options.seed)"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        hq = HubNode(name: "hq", region: nil, directory: directory)
    }

    // MARK: running the binary

    private func nextScratch() -> String {
        scratch += 1
        return directory + "/.out-\(scratch)"
    }

    /// Runs `storesync ARGUMENTS` in the foreground.
    private func storesync(_ arguments: [String], log: String, timeout: TimeInterval = 30) throws
        -> (exit: ChildExit, stdout: String, timedOut: Bool) {
        try Child.run(options.binary, arguments, scratch: nextScratch(), stderr: log, timeout: timeout)
    }

    /// A workload command; one in 30 gets SIGKILL at a random moment of its first 60 ms (a
    /// guide's terminal crashing mid-write: the write is then of unknown outcome). A create
    /// command carries `key` as its `--request-id` when the binary supports it, and is then
    /// retried (up to 3 times) after a kill, a timeout or exit 75, as a script would: the
    /// retry must print the first run's ids and create nothing new.
    private func write(_ arguments: [String], log: String, key: String? = nil) throws -> (exit: ChildExit, stdout: String, timedOut: Bool) {
        var arguments = arguments
        let keyed = key != nil && options.capabilities.requestID
        if keyed, let key { arguments += ["--request-id", key] }
        var result: (exit: ChildExit, stdout: String, timedOut: Bool)
        if rng.chance(1.0 / 30) {
            let after = Double(rng.int(0...60)) / 1000
            result = try Child.run(options.binary, arguments, scratch: nextScratch(), stderr: log, timeout: 30, killAfter: after)
            faults += 1
            history.record(.fault, "SIGKILL `storesync \(arguments.prefix(2).joined(separator: " "))` after \(Int(after * 1000)) ms: \(result.exit)")
        } else {
            result = try storesync(arguments, log: log)
        }
        var retries = 0
        while keyed && retries < 3 && (result.timedOut || result.exit == .exited(75) || result.exit == .signaled(SIGKILL)) {
            retries += 1
            let previous = result.exit
            result = try storesync(arguments, log: log)
            history.record(.op, "retry \(retries) of `storesync \(arguments.prefix(2).joined(separator: " "))` --request-id \(key ?? "") after \(previous): \(result.exit) \(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result
    }

    /// A setup step that must succeed.
    private func setup(_ arguments: [String], log: String) throws -> String {
        let result = try storesync(arguments, log: log)
        guard result.exit == .exited(0) else {
            throw ChildFailure("setup step `storesync \(arguments.joined(separator: " "))` ended with \(result.exit): \(result.stdout)")
        }
        return result.stdout
    }


    // MARK: topology

    private func buildTopology() throws {
        stores = [
            StoreSpec(id: "N1", region: "north", latitude: 39.904, longitude: 116.407),
            StoreSpec(id: "N2", region: "north", latitude: 39.958, longitude: 116.452),
            StoreSpec(id: "S1", region: "south", latitude: 31.230, longitude: 121.473),
            StoreSpec(id: "S2", region: "south", latitude: 31.262, longitude: 121.512),
        ]
        _ = try setup(["init", "--db", hq.database, "--hq"], log: hq.log)
        for store in stores {
            _ = try setup(["store", "add", "--db", hq.database, "--id", store.id, "--region", store.region,
                           "--lat", "\(store.latitude)", "--lon", "\(store.longitude)", "--name", "store-\(store.id)"], log: hq.log)
            log.registers.append(RegisterWrite(sequence: log.next(), register: "stores/\(store.id)/name", value: "store-\(store.id)",
                                               writer: hq.name, outcome: .acknowledged))
            let minimum = store.id.hasSuffix("1") ? 4 : 3
            _ = try setup(["threshold", "set", "--db", hq.database, "--store", store.id, "--sku", "TV-55", "--min", "\(minimum)"], log: hq.log)
            log.registers.append(RegisterWrite(sequence: log.next(), register: "thresholds/\(store.id)/TV-55/min_quantity",
                                               value: "\(minimum)", writer: hq.name, outcome: .acknowledged))
        }
        try startHub(hq)
        for region in ["north", "south"] {
            let hub = HubNode(name: "hub-\(region)", region: region, directory: directory)
            let relay = try makeProxy("\(region)->hq")
            hq.inbound.append(relay)
            relay.retarget(hq.port)
            hub.upstream = relay.address
            regional[region] = hub
            _ = try setup(["init", "--db", hub.database, "--hub", "--region", region], log: hub.log)
            try startHub(hub)
        }
        for region in ["north", "south"] {
            guard let hub = regional[region] else { continue }
            try waitUntil("the stores of \(region) reach \(hub.name) through the relay", seconds: 90) {
                try self.count(hub.database, "SELECT count(*) FROM stores WHERE region = ?", [.text(region)]) == 2
            }
        }
        let liveStores = Set(["north", "south"].compactMap { region in rng.pick(stores.filter { $0.region == region })?.id })
        for store in stores {
            guard let hub = regional[store.region] else { continue }
            let count = rng.int(1...2)
            for index in 0..<count {
                let name = "\(store.id)-t\(index + 1)"
                let link = try makeProxy("\(name)->\(hub.name)")
                hub.inbound.append(link)
                link.retarget(hub.port)
                let terminal = TerminalNode(name: name, store: store, index: index, storeTerminals: count, directory: directory,
                                            link: link, live: index == 0 && liveStores.contains(store.id))
                terminals.append(terminal)
                _ = try setup(["init", "--db", terminal.database, "--terminal", "--store", store.id], log: terminal.log)
                try waitUntil("\(name)'s first sync succeeds", seconds: 60) {
                    try self.storesync(["sync", "--db", terminal.database, "--hub", link.address, "--timeout-s", "10"],
                                       log: terminal.log).exit == .exited(0)
                }
            }
        }
        // Faults start now: every link gets its own baseline noise; one terminal may stay offline.
        for proxy in proxies {
            var faults = LinkFaults()
            faults.cutProbability = [0.0, 0.1, 0.25][rng.int(0...2)]
            faults.stallProbability = [0.0, 0.05][rng.int(0...1)]
            faults.maxStallMilliseconds = 2_000
            faults.delayProbability = 0.1
            faults.maxDelayMilliseconds = 15
            faults.splitProbability = 0.2
            baseline[ObjectIdentifier(proxy)] = faults
            proxy.setFaults(faults)
            history.record(.fault, "link \(proxy.name) baseline \(faults)")
        }
        // The offline terminal goes offline after a warm-up (so it knows its colleagues' leads
        // and its stage moves can race theirs), and stays offline until the heal with a backlog.
        if rng.chance(0.7), let offline = rng.pick(terminals.filter { !$0.live }) {
            offlineTerminal = offline
            offlineAfter = rng.int(0...(max(options.operations, 1) * 3 / 10))
        }
        for terminal in terminals where terminal.live { try startLive(terminal) }
        history.record(.note, "storesync capabilities: \(options.capabilities)\(options.restoreFaults ? ", restore faults on" : "")")
        history.record(.note, "topology: hq, \(regional.count) regional hubs, \(stores.count) stores, terminals "
                       + terminals.map { "\($0.name)\($0.live ? "(live)" : "")" }.joined(separator: " "))
    }

    private func makeProxy(_ name: String) throws -> ChaosProxy {
        let history = self.history
        let proxy = try ChaosProxy(name: name, rng: rng.derived(UInt64(proxies.count + 1) &* 7919)) { line in
            history.record(.fault, line)
        }
        proxies.append(proxy)
        return proxy
    }

    private func startHub(_ hub: HubNode) throws {
        var arguments = ["hub", "--db", hub.database, "--listen", "127.0.0.1:0", "--handshake-timeout-s", "5", "--idle-timeout-s", "30"]
        if let upstream = hub.upstream { arguments += ["--upstream", upstream] }
        let stdout = directory + "/\(hub.name).stdout"
        let pid = try Child.spawn(options.binary, arguments, stdout: stdout, stderr: hub.log)
        guard let port = waitForListeningPort(stdout: stdout, pid: pid, deadline: Date().addingTimeInterval(60)) else {
            Child.kill(pid)
            throw ChildFailure("\(hub.name) did not print its address within 60 s (start \(hub.starts + 1)); see \(hub.log)")
        }
        hub.pid = pid
        hub.port = port
        hub.stopped = false
        hub.starts += 1
        for proxy in hub.inbound { proxy.retarget(port) }
        history.record(.heal, "\(hub.name) started (pid \(pid), port \(port), start \(hub.starts))")
    }

    private func startLive(_ terminal: TerminalNode) throws {
        let pid = try Child.spawn(options.binary, ["sync", "--db", terminal.database, "--hub", terminal.link.address, "--live"],
                                  stdout: directory + "/\(terminal.name).live.stdout", stderr: terminal.log)
        terminal.livePid = pid
        history.record(.sync, "\(terminal.name) live agent started (pid \(pid))")
    }

    private func count(_ path: String, _ sql: String, _ values: [SQLValue] = []) throws -> Int64 {
        var options = Database.Options()
        options.readOnly = true
        let database = try Database(path: path, options: options)
        return try database.fetchScalar(sql, values)?.integerValue ?? 0
    }

    /// Polls `condition` until it holds; throws after `seconds`.
    private func waitUntil(_ what: String, seconds: TimeInterval, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(50_000)
        }
        throw ChildFailure("timed out after \(Int(seconds)) s waiting until \(what)")
    }

    // MARK: the run

    func run() -> ScheduleSummary {
        do {
            try buildTopology()
            try workload()
            try heal()
        } catch {
            failures.append("harness: \(error)")
            history.record(.note, "harness stopped: \(error)")
        }
        stopEverything()
        if failures.isEmpty, let tamper = options.tamper {
            do {
                try apply(tamper)
            } catch {
                failures.append("harness: cannot tamper (\(tamper.rawValue)): \(error)")
            }
        }
        // The checks run after every schedule the harness itself completed, also after a
        // [crash] or a missed quiescence (they then say what diverged).
        if !failures.contains(where: { $0.hasPrefix("harness:") }) {
            let checker = Checker(directory: directory, binary: options.binary, hq: hq, regional: regional, terminals: terminals,
                                  stores: stores, log: log)
            failures += checker.check()
        }
        history.write(to: directory + "/history.txt")
        let summary = ScheduleSummary(seed: options.seed, failures: failures, operations: operations, acknowledged: log.acknowledged,
                                      faults: faults, syncs: syncs, seconds: Date().timeIntervalSince(started), directory: directory,
                                      resources: resourceReport())
        return summary
    }

    private func apply(_ tamper: Tamper) throws {
        switch tamper {
        case .dropRow:
            guard let record = log.inserts.last(where: { $0.table == "visits" && $0.outcome == .acknowledged }), let id = record.id,
                  let hub = regional[stores.first { $0.id == record.store }?.region ?? ""] else {
                throw ChildFailure("no acknowledged visit to drop")
            }
            try Database(path: hub.database).run("DELETE FROM visits WHERE id = ?", [.text(id)])
            history.record(.note, "tamper: deleted visit \(id) from \(hub.name)")
        case .changeField:
            guard let lead = leads.last, let terminal = terminals.first(where: { $0.name == lead.creator }) else {
                throw ChildFailure("no lead to change")
            }
            try Database(path: terminal.database).run("UPDATE leads SET source = 'tampered' WHERE id = ?", [.text(lead.id)])
            history.record(.note, "tamper: set lead \(lead.id)'s source at \(terminal.name)")
        case .duplicateSale:
            guard let record = log.inserts.last(where: { $0.table == "sales" && $0.outcome == .acknowledged }), let id = record.id else {
                throw ChildFailure("no acknowledged sale to copy")
            }
            try Database(path: hq.database).run(
                "INSERT INTO sales (id, store, guide, sku, quantity, amount_cents, at_ms, lead) "
                    + "SELECT id || '-copy', store, guide, sku, quantity, amount_cents, at_ms, lead FROM sales WHERE id = ?",
                [.text(id)])
            history.record(.note, "tamper: copied sale \(id) at hq")
        }
    }

    private var finished: Bool {
        if let minutes = options.minutes { return Date().timeIntervalSince(started) >= minutes * 60 }
        return operations >= options.operations
    }

    private func workload() throws {
        let faultChance = Double(options.faultsPerSchedule) / Double(max(options.operations, 1))
        while !finished {
            try runDeferred(all: false)
            try noticeUnexpectedExits()
            reapSyncs()
            if let offline = offlineTerminal, !offline.offline, operations >= offlineAfter {
                offline.offline = true
                offline.link.setDown(true)
                faults += 1
                history.record(.fault, "terminal \(offline.name) offline from now until the heal (link refuses), after \(operations) operations")
            }
            sampleResources()
            let roll = rng.unit()
            if rng.chance(faultChance) {
                try injectFault()
            } else if roll < 0.18 {
                startOneShotSync()
            } else {
                try operation()
                operations += 1
            }
        }
    }

    // MARK: operations

    private func operation() throws {
        guard let terminal = rng.pick(terminals) else { return }
        let roll = rng.int(0...99)
        if terminal.cloneOf != nil {
            switch roll {
            case 0..<40: return try logVisit(terminal, withLead: false)
            case 40..<75: return try signal(terminal)
            default: return try order(terminal, withLead: false)
            }
        }
        switch roll {
        case 0..<16: try addLead(terminal)
        case 16..<32: try updateLead(terminal)
        case 32..<46: try moveStage(terminal)
        case 46..<62: try logVisit(terminal)
        case 62..<80: try signal(terminal)
        case 80..<94: try order(terminal)
        default: try operatorChange()
        }
    }

    private func guide(_ terminal: TerminalNode) -> String { "g-\(terminal.store.id)-\(rng.int(1...3))" }

    private func addLead(_ terminal: TerminalNode) throws {
        // One lead in six reuses a phone of its store: the duplicate rule's input.
        let existing = leads.filter { $0.store == terminal.store.id }
        let phone = rng.chance(0.17) ? (rng.pick(existing)?.phone ?? freshPhone()) : freshPhone()
        let name = "cust-\(rng.int(1000...9999))"
        let source = ["walk-in", "web", "referral"][rng.int(0...2)]
        let score = rng.int(0...100)
        let owner = guide(terminal)
        let sequence = log.next()
        let result = try write(["lead", "add", "--db", terminal.database, "--name", name, "--phone", phone, "--source", source,
                                "--score", "\(score)", "--owner", owner, "--format", "json"], log: terminal.log, key: requestKey(sequence))
        let id = result.exit == .exited(0) ? decodeLastLine(CreatedJSON.self, result.stdout)?.id : nil
        let outcome: Outcome = id != nil ? .acknowledged : .unknown
        log.inserts.append(InsertRecord(sequence: sequence, table: "leads", id: id, store: terminal.store.id, terminal: terminal.name,
                                        outcome: outcome))
        history.record(.op, "#\(sequence) \(terminal.name) lead add -> \(id ?? "?") \(result.exit)\(result.timedOut ? " (timed out)" : "")")
        guard let id else { return }
        leads.append(LeadState(id: id, store: terminal.store.id, creator: terminal.name, stage: "reached", phone: phone))
        let initial: [(LeadField, String)] = [(.customerName, name), (.source, source), (.score, "\(score)"), (.ownerGuide, owner)]
        for (field, value) in initial {
            log.registers.append(RegisterWrite(sequence: sequence, register: "leads/\(id)/\(field.rawValue)", value: value,
                                               writer: terminal.name, outcome: .acknowledged))
        }
        log.registers.append(RegisterWrite(sequence: sequence, register: "leads/\(id)/stage", value: "reached", writer: terminal.name,
                                           outcome: .acknowledged))
    }

    private func requestKey(_ sequence: Int) -> String { "chaos-\(options.seed)-\(sequence)" }

    private func freshPhone() -> String { "+86 139 \(rng.int(1000...9999)) \(rng.int(1000...9999))" }

    private func updateLead(_ terminal: TerminalNode) throws {
        guard let lead = rng.pick(leads.filter { $0.store == terminal.store.id }) else { return try addLead(terminal) }
        let fields = terminal.updatableFields
        var arguments = ["lead", "update", "--db", terminal.database, "--id", lead.id, "--format", "json"]
        var written: [(LeadField, String)] = []
        for field in fields where rng.chance(0.6) || written.isEmpty && field == fields.last {
            let value: String
            switch field {
            case .customerName: value = "cust-\(rng.int(1000...9999))"
            case .source: value = ["walk-in", "web", "referral", "event"][rng.int(0...3)]
            case .score: value = "\(rng.int(0...100))"
            case .ownerGuide: value = guide(terminal)
            }
            arguments += [field.option, value]
            written.append((field, value))
        }
        let sequence = log.next()
        let result = try write(arguments, log: terminal.log)
        let outcome: Outcome = result.exit == .exited(0) ? .acknowledged : .unknown
        for (field, value) in written {
            log.registers.append(RegisterWrite(sequence: sequence, register: "leads/\(lead.id)/\(field.rawValue)", value: value,
                                               writer: terminal.name, outcome: outcome))
        }
        history.record(.op, "#\(sequence) \(terminal.name) lead update \(lead.id) "
                       + written.map { "\($0.0.rawValue)=\($0.1)" }.joined(separator: " ") + " \(result.exit)")
    }

    private func moveStage(_ terminal: TerminalNode) throws {
        // A terminal moves a lead from what it last saw of it: the last acknowledged move overall,
        // or, half the time, its own last move (it may not have pulled a colleague's yet, which
        // is how concurrent moves, won against lost among them, reach the hub).
        func view(_ lead: LeadState, from mover: String) -> String {
            rng.chance(0.5) ? lead.stage : (lead.stageBy[mover] ?? "reached")
        }
        let candidates = leads.indices.filter { leads[$0].store == terminal.store.id }
        guard let index = rng.pick(candidates) else { return try addLead(terminal) }
        // Mostly the lead's creator moves it; sometimes a colleague on the store's other terminal.
        let mover: TerminalNode
        if rng.chance(0.8) {
            mover = terminals.first { $0.name == leads[index].creator } ?? terminal
        } else {
            mover = terminal
        }
        let seen = view(leads[index], from: mover.name)
        guard seen != "won" && seen != "lost" else { return try logVisit(terminal) }
        let current = funnel.firstIndex(of: seen) ?? 0
        let target = rng.chance(0.12) ? "lost" : funnel[min(current + 1, funnel.count - 1)]
        let sequence = log.next()
        let result = try write(["lead", "stage", "--db", mover.database, "--id", leads[index].id, "--to", target, "--format", "json"],
                               log: mover.log)
        let outcome: Outcome = result.exit == .exited(0) ? .acknowledged : .unknown
        log.registers.append(RegisterWrite(sequence: sequence, register: "leads/\(leads[index].id)/stage", value: target,
                                           writer: mover.name, outcome: outcome))
        if outcome == .acknowledged {
            leads[index].stage = target
            leads[index].stageBy[mover.name] = target
        }
        history.record(.op, "#\(sequence) \(mover.name) lead stage \(leads[index].id) \(seen) -> \(target) \(result.exit)")
    }

    private func logVisit(_ terminal: TerminalNode, withLead: Bool = true) throws {
        var arguments = ["visit", "log", "--db", terminal.database, "--guide", guide(terminal), "--duration-min", "\(rng.int(1...90))",
                         "--products", rng.pick(skus) ?? "TV-55", "--format", "json"]
        let lead = withLead && rng.chance(0.6) ? rng.pick(leads.filter { $0.store == terminal.store.id }) : nil
        if let lead { arguments += ["--lead", lead.id] }
        try insert(arguments, table: "visits", terminal: terminal, detail: "visit log\(lead.map { " lead \($0.id)" } ?? "")")
    }

    private func signal(_ terminal: TerminalNode) throws {
        let sku = pickSKU(&rng)
        let (kind, quantity): (String, Int) = {
            switch rng.int(0...9) {
            case 0...2: return ("receive", rng.int(1...5))
            case 3...4: return ("count", rng.int(0...12))
            case 5...6: return ("adjust", rng.chance(0.5) ? rng.int(1...3) : -rng.int(1...3))
            default: return ("sale", rng.int(1...2))
            }
        }()
        try insert(["stock", kind, "--db", terminal.database, "--sku", sku, "--qty", "\(quantity)", "--guide", guide(terminal),
                    "--format", "json"], table: "inventory_signals", terminal: terminal, detail: "stock \(kind) \(sku) \(quantity)")
    }

    /// A multi-line order: 1–3 sale lines by one guide, each with its stock sale signal.
    private func order(_ terminal: TerminalNode, withLead: Bool = true) throws {
        let guide = guide(terminal)
        let lead = withLead && rng.chance(0.5) ? rng.pick(leads.filter { $0.store == terminal.store.id }) : nil
        for _ in 0..<rng.int(1...3) {
            let sku = pickSKU(&rng)
            let quantity = rng.int(1...2)
            let cents = Int64(rng.int(100...500_000))
            var arguments = ["sale", "record", "--db", terminal.database, "--guide", guide, "--sku", sku, "--qty", "\(quantity)",
                             "--amount", String(format: "%lld.%02lld", cents / 100, cents % 100), "--format", "json"]
            if let lead { arguments += ["--lead", lead.id] }
            let sequence = log.next()
            let result = try write(arguments, log: terminal.log, key: requestKey(sequence))
            let object = result.exit == .exited(0) ? decodeLastLine(CreatedJSON.self, result.stdout) : nil
            let sale = object?.id
            let signal = object?.signal
            let outcome: Outcome = sale != nil && signal != nil ? .acknowledged : .unknown
            log.inserts.append(InsertRecord(sequence: sequence, table: "sales", id: sale, store: terminal.store.id, terminal: terminal.name,
                                            outcome: outcome, amountCents: cents))
            log.inserts.append(InsertRecord(sequence: sequence, table: "inventory_signals", id: signal, store: terminal.store.id,
                                            terminal: terminal.name, outcome: outcome))
            history.record(.op, "#\(sequence) \(terminal.name) sale record \(sku) x\(quantity) \(cents)c -> \(sale ?? "?") signal \(signal ?? "?") \(result.exit)")
        }
    }

    private func insert(_ arguments: [String], table: String, terminal: TerminalNode, detail: String) throws {
        let sequence = log.next()
        let result = try write(arguments, log: terminal.log, key: requestKey(sequence))
        let id = result.exit == .exited(0) ? decodeLastLine(CreatedJSON.self, result.stdout)?.id : nil
        log.inserts.append(InsertRecord(sequence: sequence, table: table, id: id, store: terminal.store.id, terminal: terminal.name,
                                        outcome: id != nil ? .acknowledged : .unknown))
        history.record(.op, "#\(sequence) \(terminal.name) \(detail) -> \(id ?? "?") \(result.exit)\(result.timedOut ? " (timed out)" : "")")
    }

    /// Operators write reference data into running hubs' files: a regional threshold (SKUs HQ
    /// leaves alone, so each key has one writer), or a store's new name at HQ.
    private func operatorChange() throws {
        guard let store = rng.pick(stores) else { return }
        let sequence = log.next()
        if rng.chance(0.7), let hub = regional[store.region] {
            let sku = rng.chance(0.5) ? "PH-12" : "LAP-3"
            let minimum = rng.int(1...6)
            let result = try storesync(["threshold", "set", "--db", hub.database, "--store", store.id, "--sku", sku, "--min", "\(minimum)"],
                                       log: hub.log)
            log.registers.append(RegisterWrite(sequence: sequence, register: "thresholds/\(store.id)/\(sku)/min_quantity",
                                               value: "\(minimum)", writer: hub.name,
                                               outcome: result.exit == .exited(0) ? .acknowledged : .unknown))
            history.record(.op, "#\(sequence) \(hub.name) threshold set \(store.id)/\(sku) \(minimum) \(result.exit)")
        } else {
            let name = "store-\(store.id)-\(rng.int(1...999))"
            let result = try storesync(["store", "add", "--db", hq.database, "--id", store.id, "--region", store.region,
                                        "--lat", "\(store.latitude)", "--lon", "\(store.longitude)", "--name", name], log: hq.log)
            log.registers.append(RegisterWrite(sequence: sequence, register: "stores/\(store.id)/name", value: name, writer: hq.name,
                                               outcome: result.exit == .exited(0) ? .acknowledged : .unknown))
            history.record(.op, "#\(sequence) hq store add \(store.id) name \(name) \(result.exit)")
        }
    }

    // MARK: syncs

    private func startOneShotSync(_ chosen: TerminalNode? = nil) {
        guard let terminal = chosen ?? rng.pick(terminals.filter { !$0.live && $0.syncPid == nil }), terminal.syncPid == nil else { return }
        let killAfter = rng.chance(0.25) ? Double(rng.int(0...600)) / 1000 : nil
        guard let pid = try? Child.spawn(options.binary, ["sync", "--db", terminal.database, "--hub", terminal.link.address,
                                                          "--timeout-s", "5", "--format", "json"],
                                         stdout: directory + "/\(terminal.name).sync.stdout", stderr: terminal.log) else { return }
        syncs += 1
        terminal.syncPid = pid
        terminal.syncStarted = Date()
        terminal.syncKillAt = killAfter.map { Date().addingTimeInterval($0) }
        history.record(.sync, "\(terminal.name) one-shot sync started (pid \(pid))\(killAfter.map { ", SIGKILL planned after \(Int($0 * 1000)) ms" } ?? "")")
    }

    private func reapSyncs() {
        for terminal in terminals {
            guard let pid = terminal.syncPid else { continue }
            if let exit = Child.poll(pid) {
                terminal.syncPid = nil
                history.record(.sync, "\(terminal.name) one-shot sync \(exit) after \(Int(Date().timeIntervalSince(terminal.syncStarted) * 1000)) ms")
                if exit != .exited(0), let output = try? String(contentsOfFile: directory + "/\(terminal.name).sync.stdout", encoding: .utf8),
                   isReplicaConflict(output) {
                    reidentify(terminal)
                }
            } else if let killAt = terminal.syncKillAt, Date() >= killAt {
                let exit = Child.kill(pid)
                terminal.syncPid = nil
                faults += 1
                history.record(.fault, "SIGKILL \(terminal.name)'s one-shot sync after \(Int(Date().timeIntervalSince(terminal.syncStarted) * 1000)) ms (\(exit))")
            } else if Date().timeIntervalSince(terminal.syncStarted) > 60 {
                let exit = Child.kill(pid)
                terminal.syncPid = nil
                history.record(.sync, "\(terminal.name) one-shot sync still running after 60 s: killed (\(exit))")
            }
        }
    }

    /// A hub or live agent that ended without being killed is a finding ([crash]); it is
    /// started again so the schedule goes on.
    private func noticeUnexpectedExits() throws {
        for hub in [hq] + regional.values.sorted(by: { $0.name < $1.name }) {
            guard let pid = hub.pid, let exit = Child.poll(pid) else { continue }
            hub.pid = nil
            hub.port = nil
            for proxy in hub.inbound { proxy.retarget(nil) }
            failures.append("[crash] \(hub.name) (pid \(pid)) ended by itself with \(exit); see \(hub.log)")
            history.record(.note, "\(hub.name) ended by itself with \(exit)")
            try startHub(hub)
        }
        for terminal in terminals {
            guard let pid = terminal.livePid, let exit = Child.poll(pid) else { continue }
            terminal.livePid = nil
            failures.append("[crash] \(terminal.name)'s live agent (pid \(pid)) ended by itself with \(exit); see \(terminal.log)")
            history.record(.note, "\(terminal.name)'s live agent ended by itself with \(exit)")
            try startLive(terminal)
        }
    }

    // MARK: faults

    private func injectFault() throws {
        let hubs = [hq] + regional.keys.sorted().compactMap { regional[$0] }
        let running = hubs.filter { $0.pid != nil && !$0.stopped }
        let onlineLinks = proxies.filter { proxy in !terminals.contains { $0.offline && $0.link === proxy } }
        if options.restoreFaults && options.capabilities.backup && rng.chance(0.15) {
            return try backUpForRestore(running)
        }
        if options.restoreFaults && options.capabilities.reidentify && clones < 1 && rng.chance(0.08) {
            return try cloneTerminal()
        }
        switch rng.int(0...9) {
        case 0...1 where options.killHubs && !running.isEmpty:
            guard let hub = rng.pick(running), let pid = hub.pid else { return }
            let exit = Child.kill(pid)
            hub.pid = nil
            hub.port = nil
            for proxy in hub.inbound { proxy.retarget(nil) }
            let downFor = Double(rng.int(0...2_500)) / 1000
            deferred.append((Date().addingTimeInterval(downFor), .restartHub(hub)))
            history.record(.fault, "SIGKILL \(hub.name) (\(exit)); restart in \(Int(downFor * 1000)) ms")
        case 2 where !running.isEmpty:
            guard let hub = rng.pick(running), let pid = hub.pid else { return }
            kill(pid, SIGSTOP)
            hub.stopped = true
            let stoppedFor = Double(rng.int(300...5_000)) / 1000
            deferred.append((Date().addingTimeInterval(stoppedFor), .continueHub(hub)))
            history.record(.fault, "SIGSTOP \(hub.name) for \(Int(stoppedFor * 1000)) ms")
        case 3...4:
            guard let proxy = rng.pick(onlineLinks) else { return }
            proxy.setDown(true)
            let downFor = Double(rng.int(200...4_000)) / 1000
            deferred.append((Date().addingTimeInterval(downFor), .linkUp(proxy)))
            history.record(.fault, "link \(proxy.name) down (resets, refusals) for \(Int(downFor * 1000)) ms")
        case 5...6:
            guard let proxy = rng.pick(onlineLinks) else { return }
            proxy.resetAll()
            history.record(.fault, "link \(proxy.name): every open connection reset")
        case 7:
            guard let proxy = rng.pick(onlineLinks) else { return }
            var noisy = LinkFaults()
            noisy.cutProbability = 0.7
            noisy.maxCutOffset = 16 * 1024
            noisy.stallProbability = 0.3
            noisy.maxStallMilliseconds = 6_000
            noisy.delayProbability = 0.5
            noisy.maxDelayMilliseconds = 40
            noisy.splitProbability = 0.5
            proxy.setFaults(noisy)
            let noisyFor = Double(rng.int(1_000...6_000)) / 1000
            deferred.append((Date().addingTimeInterval(noisyFor), .baseline(proxy)))
            history.record(.fault, "link \(proxy.name) noisy (\(noisy)) for \(Int(noisyFor * 1000)) ms")
        default:
            guard let terminal = rng.pick(terminals.filter { $0.live && $0.livePid != nil }), let pid = terminal.livePid else { return }
            let exit = Child.kill(pid)
            terminal.livePid = nil
            let downFor = Double(rng.int(0...2_000)) / 1000
            deferred.append((Date().addingTimeInterval(downFor), .restartLive(terminal)))
            history.record(.fault, "SIGKILL \(terminal.name)'s live agent (\(exit)); restart in \(Int(downFor * 1000)) ms")
        }
        faults += 1
    }

    /// An online backup of a running hub now; in 1–5 s the hub is killed and restored from it
    /// (what an operator does after losing a disk). Operator writes into that hub's file after
    /// the backup become of unknown outcome at the restore: the restore rolls them back unless
    /// they reached HQ first.
    private func backUpForRestore(_ running: [HubNode]) throws {
        let pendingRestores = deferred.compactMap { item -> String? in
            if case .restoreHub(let hub, _, _) = item.action { return hub.name }
            return nil
        }
        guard let hub = rng.pick(running.filter { !pendingRestores.contains($0.name) }) else { return }
        let backup = directory + "/\(hub.name).backup-\(log.sequence).sqlite"
        let sequence = log.sequence
        let result = try storesync(["backup", "--db", hub.database, "--to", backup, "--format", "json"], log: hub.log, timeout: 60)
        guard result.exit == .exited(0) else {
            history.record(.fault, "backup of \(hub.name) failed (\(result.exit)): no restore")
            return
        }
        let after = Double(rng.int(1_000...5_000)) / 1000
        deferred.append((Date().addingTimeInterval(after), .restoreHub(hub, backup: backup, sequence: sequence)))
        faults += 1
        history.record(.fault, "online backup of \(hub.name) at write #\(sequence) (\(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))); restore in \(Int(after * 1000)) ms")
    }

    /// The clone fault: a terminal's checkpointed file copied byte for byte as a new terminal
    /// of the same store (a cloned disk image), then both sync. One of the two presents a lease
    /// the hub no longer holds and is refused with REPLICA_CONFLICT (exit 1, kind
    /// `replica_conflict`); the harness then runs `storesync reidentify --db FILE` on it, as
    /// the error tells an operator to, and it syncs again. Every acknowledged write of both
    /// must reach every node of the store's scope.
    private func cloneTerminal() throws {
        guard let original = rng.pick(terminals.filter { !$0.live && !$0.offline && $0.cloneOf == nil }),
              let hub = regional[original.store.region] else { return }
        if let pid = original.syncPid {
            if Child.wait(pid, until: Date().addingTimeInterval(30)) == nil { Child.kill(pid) }
            original.syncPid = nil
        }
        // Nothing else has the file open now (workload commands run in the foreground).
        _ = try Database(path: original.database).checkpoint(.truncate)
        clones += 1
        let name = "\(original.store.id)-clone\(clones)"
        let link = try makeProxy("\(name)->\(hub.name)")
        hub.inbound.append(link)
        link.retarget(hub.port)
        let clone = TerminalNode(name: name, store: original.store, index: 2, storeTerminals: original.storeTerminals,
                                 directory: directory, link: link, live: false)
        clone.cloneOf = original.name
        for suffix in ["-wal", "-shm"] { unlink(clone.database + suffix) }
        do {
            try FileManager.default.copyItem(atPath: original.database, toPath: clone.database)
        } catch {
            throw ChildFailure("cannot copy \(original.database) as a clone: \(error)")
        }
        var faults = baseline[ObjectIdentifier(original.link)] ?? .none
        faults.cutProbability = min(faults.cutProbability, 0.1)
        baseline[ObjectIdentifier(link)] = faults
        link.setFaults(faults)
        terminals.append(clone)
        self.faults += 1
        history.record(.fault, "clone: \(original.name)'s checkpointed file copied as \(name) (same replica id); both sync now")
        // The original syncs first (in the foreground), then the clone in the background: the
        // later of the two to reach the hub is refused.
        syncHandlingConflicts(original)
        startOneShotSync(clone)
    }

    private var clones = 0

    /// A foreground one-shot sync that reidentifies the terminal when the hub (or the client's
    /// own check) says its replica id is held by another database.
    @discardableResult
    private func syncHandlingConflicts(_ terminal: TerminalNode) -> Bool {
        guard let result = try? storesync(["sync", "--db", terminal.database, "--hub", terminal.link.address, "--timeout-s", "15",
                                           "--format", "json"], log: terminal.log, timeout: 60) else { return false }
        syncs += 1
        history.record(.sync, "\(terminal.name) foreground sync: \(result.exit)")
        if result.exit != .exited(0) && isReplicaConflict(result.stdout) { reidentify(terminal) }
        return result.exit == .exited(0)
    }

    /// `--format json`'s failure object names the kind; before the CLI had the kind, the
    /// message named the remedy.
    private func isReplicaConflict(_ stdout: String) -> Bool {
        guard let failure = decodeLastLine(FailureJSON.self, stdout) else { return false }
        return failure.error == "replica_conflict" || (failure.message ?? "").contains("reidentify")
    }

    private func reidentify(_ terminal: TerminalNode) {
        let result = try? storesync(["reidentify", "--db", terminal.database, "--format", "json"], log: terminal.log)
        terminal.reidentified += 1
        history.record(.heal, "\(terminal.name) refused with REPLICA_CONFLICT: `storesync reidentify` \(result.map { "\($0.exit) \($0.stdout.trimmingCharacters(in: .whitespacesAndNewlines))" } ?? "could not run")")
    }

    private func restore(_ hub: HubNode, backup: String, sequence: Int) throws {
        if let pid = hub.pid {
            Child.kill(pid)
            hub.pid = nil
            hub.port = nil
            hub.stopped = false
            for proxy in hub.inbound { proxy.retarget(nil) }
        }
        for suffix in ["", "-wal", "-shm"] { unlink(hub.database + suffix) }
        guard rename(backup, hub.database) == 0 else { throw ChildFailure("cannot move \(backup) into place: errno \(errno)") }
        for index in log.registers.indices where log.registers[index].writer == hub.name && log.registers[index].sequence > sequence {
            log.registers[index].outcome = .unknown
        }
        history.record(.fault, "SIGKILL \(hub.name) and restore its file from the backup taken at write #\(sequence)")
        try startHub(hub)
    }

    private func runDeferred(all: Bool) throws {
        let now = Date()
        let due = deferred.filter { all || $0.due <= now }
        deferred.removeAll { all || $0.due <= now }
        for (_, action) in due {
            switch action {
            case .restartHub(let hub):
                if hub.pid == nil { try startHub(hub) }
            case .continueHub(let hub):
                if let pid = hub.pid, hub.stopped {
                    kill(pid, SIGCONT)
                    hub.stopped = false
                    history.record(.heal, "SIGCONT \(hub.name)")
                }
            case .linkUp(let proxy):
                if !all && terminals.contains(where: { $0.offline && $0.link === proxy }) { continue }  // stays down until the heal
                proxy.setDown(false)
                history.record(.heal, "link \(proxy.name) up")
            case .baseline(let proxy):
                proxy.setFaults(baseline[ObjectIdentifier(proxy)] ?? .none)
                history.record(.heal, "link \(proxy.name) back to its baseline")
            case .restartLive(let terminal):
                if terminal.livePid == nil { try startLive(terminal) }
            case .restoreHub(let hub, let backup, let sequence):
                try restore(hub, backup: backup, sequence: sequence)
            }
        }
    }

    // MARK: resources (long mode)

    private func sampleResources() {
        guard options.minutes != nil, Date().timeIntervalSince(lastSample) >= 10 else { return }
        lastSample = Date()
        let minute = Date().timeIntervalSince(started) / 60
        for hub in [hq] + regional.values.sorted(by: { $0.name < $1.name }) {
            guard let pid = hub.pid, let sample = processResources(pid) else { continue }
            resourceSamples["\(hub.name)#\(hub.starts)", default: []].append((minute, sample.rssKiB, sample.descriptors))
        }
    }

    private func resourceReport() -> [String] {
        resourceSamples.keys.sorted().compactMap { key in
            guard let samples = resourceSamples[key], let first = samples.first, let last = samples.last else { return nil }
            let peakRSS = samples.map(\.rss).max() ?? 0
            let peakFDs = samples.map(\.fds).max() ?? 0
            // The second quarter's mean against the last quarter's: growth after warm-up.
            let quarter = max(samples.count / 4, 1)
            let early = samples.dropFirst(quarter).prefix(quarter)
            let late = samples.suffix(quarter)
            let earlyRSS = early.isEmpty ? first.rss : early.map(\.rss).reduce(0, +) / early.count
            let lateRSS = late.map(\.rss).reduce(0, +) / max(late.count, 1)
            return String(format: "%@: %d samples over %.1f min; RSS %d -> %d KiB (peak %d; warm %d, last quarter %d); fds %d -> %d (peak %d)",
                          key, samples.count, last.minute - first.minute, first.rss, last.rss, peakRSS, earlyRSS, lateRSS,
                          first.fds, last.fds, peakFDs)
        }
    }

    // MARK: heal and stop

    private func heal() throws {
        history.record(.heal, "heal: faults off, hubs up, links up, the offline terminal back")
        try runDeferred(all: true)
        for hub in [hq] + regional.values.sorted(by: { $0.name < $1.name }) {
            if let pid = hub.pid, hub.stopped {
                kill(pid, SIGCONT)
                hub.stopped = false
            }
            if hub.pid == nil { try startHub(hub) }
        }
        for proxy in proxies {
            proxy.setFaults(.none)
            proxy.setDown(false)
        }
        for terminal in terminals {
            terminal.offline = false
            if terminal.live && terminal.livePid == nil { try startLive(terminal) }
            if let pid = terminal.syncPid {
                if Child.wait(pid, until: Date().addingTimeInterval(30)) == nil { Child.kill(pid) }
                terminal.syncPid = nil
            }
        }
        // Quiescence: rounds of one-shot syncs until every replica of every scope agrees and a
        // whole round moves nothing, within the deadline (the relay and live agents back off up
        // to 30 s after the faults, so this may take a while).
        let deadline = Date().addingTimeInterval(options.quiesceSeconds)
        var rounds = 0
        var calmRounds = 0
        while Date() < deadline {
            try noticeUnexpectedExits()
            rounds += 1
            var moved = 0
            var failed = 0
            for terminal in terminals where !terminal.live {
                let result = try storesync(["sync", "--db", terminal.database, "--hub", terminal.link.address, "--timeout-s", "15",
                                            "--format", "json"], log: terminal.log, timeout: 60)
                if result.exit == .exited(0), let object = decodeLastLine(SyncJSON.self, result.stdout) {
                    moved += (object.pushed_rows ?? 0) + (object.pulled_rows ?? 0)
                } else {
                    failed += 1
                    if isReplicaConflict(result.stdout) { reidentify(terminal) }
                }
            }
            let checker = Checker(directory: directory, binary: options.binary, hq: hq, regional: regional, terminals: terminals,
                                  stores: stores, log: log)
            let divergent = checker.divergence()
            if failed == 0 && moved == 0 && divergent.isEmpty {
                calmRounds += 1
                if calmRounds >= 2 {
                    history.record(.heal, "quiescent after \(rounds) sync rounds, \(Int(Date().timeIntervalSince(started))) s into the schedule")
                    return
                }
            } else {
                calmRounds = 0
            }
            if rounds % 10 == 0 {
                history.record(.heal, "round \(rounds): moved \(moved) rows, \(failed) syncs failed, divergent: \(divergent.prefix(3).joined(separator: "; "))")
            }
            usleep(rounds < 5 ? 100_000 : 500_000)
        }
        let checker = Checker(directory: directory, binary: options.binary, hq: hq, regional: regional, terminals: terminals,
                              stores: stores, log: log)
        let divergent = checker.divergence()
        failures.append("no quiescence within \(Int(options.quiesceSeconds)) s of healing (invariant 1, convergence): "
                        + divergent.prefix(10).joined(separator: "; "))
    }

    /// SIGTERM to every long-running process (a clean stop is part of the contract), SIGKILL
    /// after 30 s, then the proxies.
    private func stopEverything() {
        for hub in [hq] + regional.values.sorted(by: { $0.name < $1.name }) {
            if let pid = hub.pid, hub.stopped { kill(pid, SIGCONT) }
        }
        var running: [(name: String, pid: pid_t, isHub: Bool)] = []
        for terminal in terminals {
            if let pid = terminal.livePid { running.append((terminal.name + " live agent", pid, false)) }
            if let pid = terminal.syncPid { running.append((terminal.name + " one-shot sync", pid, false)) }
        }
        for hub in regional.values.sorted(by: { $0.name < $1.name }) + [hq] {
            if let pid = hub.pid { running.append((hub.name, pid, true)) }
        }
        for process in running { kill(process.pid, SIGTERM) }
        for process in running {
            let exit = Child.wait(process.pid, until: Date().addingTimeInterval(30))
            if let exit {
                if exit != .exited(0) && process.isHub {
                    failures.append("\(process.name) exited with \(exit) after SIGTERM, not 0 (README: a hub stops cleanly on SIGTERM)")
                }
            } else {
                Child.kill(process.pid)
                if process.isHub {
                    failures.append("\(process.name) did not exit within 30 s of SIGTERM")
                }
            }
        }
        for hub in [hq] + regional.values { hub.pid = nil }
        for terminal in terminals {
            terminal.livePid = nil
            terminal.syncPid = nil
        }
        for proxy in proxies { proxy.stop() }
        let totals = proxies.reduce(into: ChaosProxy.Statistics()) { total, proxy in
            let statistics = proxy.statistics
            total.connections += statistics.connections
            total.refused += statistics.refused
            total.cuts += statistics.cuts
            total.stalls += statistics.stalls
            total.resetsByHarness += statistics.resetsByHarness
            total.bytes += statistics.bytes
        }
        history.record(.note, "proxies: \(totals.connections) connections, \(totals.cuts) cut, \(totals.stalls) stalled, "
                       + "\(totals.refused) refused, \(totals.resetsByHarness) reset-all, \(totals.bytes) bytes forwarded")
        proxyTotals = totals
    }

    private(set) var proxyTotals = ChaosProxy.Statistics()
}
