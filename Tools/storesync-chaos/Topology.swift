import Foundation
import Glibc

/// One store of the topology.
struct StoreSpec: Sendable {
    var id: String
    var region: String
    var latitude: Double
    var longitude: Double
}

/// A hub process (HQ or a regional hub), with the proxies in front of it.
final class HubNode {
    let name: String
    /// nil for HQ.
    let region: String?
    let database: String
    let log: String
    /// Links whose far end is this hub (terminals' links for a regional hub, relays' for HQ).
    var inbound: [ChaosProxy] = []
    /// The address a regional hub relays to (HQ's proxy for this region).
    var upstream: String?
    var pid: pid_t?
    var port: UInt16?
    var stopped = false
    var starts = 0

    init(name: String, region: String?, directory: String) {
        self.name = name
        self.region = region
        database = directory + "/\(name).sqlite"
        log = directory + "/\(name).log"
    }

    var scope: String { region.map { "region:\($0)" } ?? "all" }
}

/// A store's terminal: its replica, its link to the regional hub, and how it syncs.
final class TerminalNode {
    let name: String
    let store: StoreSpec
    /// 0 or 1 within its store: which lead fields this terminal updates.
    let index: Int
    let storeTerminals: Int
    let database: String
    let log: String
    let link: ChaosProxy
    /// Runs `storesync sync --live` (otherwise one-shot syncs at random moments).
    let live: Bool
    /// Cut off from its hub from the start until the heal.
    var offline = false
    /// A byte copy of another terminal's file (the clone fault): it writes inserts only (no
    /// lead updates or stage moves, so every register keeps one writer), and whichever of the
    /// pair syncs second is refused with REPLICA_CONFLICT until `storesync reidentify` runs.
    var cloneOf: String?
    /// Times `storesync reidentify` ran on this terminal after a REPLICA_CONFLICT.
    var reidentified = 0
    var livePid: pid_t?
    var syncPid: pid_t?
    var syncKillAt: Date?
    var syncStarted = Date()

    init(name: String, store: StoreSpec, index: Int, storeTerminals: Int, directory: String, link: ChaosProxy, live: Bool) {
        self.name = name
        self.store = store
        self.index = index
        self.storeTerminals = storeTerminals
        database = directory + "/\(name).sqlite"
        log = directory + "/\(name).log"
        self.link = link
        self.live = live
    }

    /// The lead fields this terminal updates ("concurrent updates of different fields").
    var updatableFields: [LeadField] {
        guard storeTerminals > 1 else { return LeadField.updatable }
        return index == 0 ? [.customerName, .score] : [.source, .ownerGuide]
    }
}

/// The lead fields the workload updates, as `lead update` names them and the table stores them.
enum LeadField: String, CaseIterable, Sendable {
    case customerName = "customer_name"
    case source
    case score
    case ownerGuide = "owner_guide"

    static let updatable: [LeadField] = [.customerName, .source, .score, .ownerGuide]

    var option: String {
        switch self {
        case .customerName: return "--name"
        case .source: return "--source"
        case .score: return "--score"
        case .ownerGuide: return "--owner"
        }
    }
}

/// Reads a hub's "listening on 127.0.0.1:PORT" line from its standard output file.
func waitForListeningPort(stdout: String, pid: pid_t, deadline: Date) -> UInt16? {
    while Date() < deadline {
        if let text = try? String(contentsOfFile: stdout, encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
           let colon = line.lastIndex(of: ":"), let port = UInt16(line[line.index(after: colon)...]) {
            return port
        }
        if Child.poll(pid) != nil { return nil }
        usleep(10_000)
    }
    return nil
}

/// Resident set size (KiB) and open descriptors of a process, from /proc.
func processResources(_ pid: pid_t) -> (rssKiB: Int, descriptors: Int)? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    var rss = 0
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        rss = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    return (rss, descriptors)
}
