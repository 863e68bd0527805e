import Foundation
import Retail
import SyncEngine

/// The demo's retail chain and what its guides do, driven by one seeded generator so that a
/// given `--seed` always tells the same story: the same leads, stage moves, visits, sales and
/// stock signals in the same order, on the same terminals, with the same ones offline.
struct DemoScenario {
    static let stores: [DemoNetwork.Store] = [
        .init(id: "SH-01", name: "Shanghai Nanjing Road", region: "east", latitude: 31.2353, longitude: 121.4750),
        .init(id: "SH-02", name: "Shanghai Lujiazui", region: "east", latitude: 31.2397, longitude: 121.4998),
        .init(id: "HZ-01", name: "Hangzhou West Lake", region: "east", latitude: 30.2590, longitude: 120.1490),
        .init(id: "CD-01", name: "Chengdu Chunxi Road", region: "west", latitude: 30.6570, longitude: 104.0800),
        .init(id: "CD-02", name: "Chengdu Tianfu", region: "west", latitude: 30.5720, longitude: 104.0665),
        .init(id: "CQ-01", name: "Chongqing Jiefangbei", region: "west", latitude: 29.5577, longitude: 106.5770),
    ]

    struct Product {
        var sku: String
        var priceCents: Int64
        var safetyStock: Int64
    }

    static let products = [
        Product(sku: "TV-55", priceCents: 459_900, safetyStock: 4),
        Product(sku: "PHONE-X", priceCents: 599_900, safetyStock: 6),
        Product(sku: "EARBUDS", priceCents: 89_900, safetyStock: 8),
        Product(sku: "LAPTOP-14", priceCents: 729_900, safetyStock: 3),
    ]

    static let customers: [String] = {
        let family = ["Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun"]
        let given = ["Wei", "Fang", "Min", "Yang", "Jing", "Lei", "Xin", "Yan", "Tao", "Hui", "Na", "Qiang"]
        return family.flatMap { first in given.map { "\(first) \($0)" } }
    }()
    static let sources = ["walk-in", "referral", "wechat", "event"]

    /// Simulated time: the demo's days start here (UTC), whatever the date of the run.
    static let startMilliseconds: Int64 = 1_794_819_600_000   // 2026-11-16T09:00:00Z
    static let tickMilliseconds: Int64 = 2 * 3_600_000
    static let ticksPerDay = 5

    var random: SplitMix64
    var days: Int
    /// What the guides did, counted here so the summary can say it.
    var written = Counts()
    /// The order in which the story created each lead.
    private var creationOrder: [String: Int] = [:]
    /// A phone number per customer index, so a customer can come back as a duplicate lead.
    private var phones: [String] = []

    struct Counts {
        var leads = 0, reenteredCustomers = 0, stageMoves = 0, visits = 0, sales = 0, salesCents: Int64 = 0
        var stockSignals = 0, syncs = 0, offlineTicks = 0
    }

    init(seed: UInt64, days: Int) {
        random = SplitMix64(seed: seed)
        self.days = days
        phones = Self.customers.indices.map { "+86 138 \(String(format: "%04d", 1000 + $0 * 37)) \(String(format: "%04d", 2000 + $0 * 53 % 8000))" }
    }

    static func time(day: Int, tick: Int) -> Int64 {
        startMilliseconds + Int64(day) * 86_400_000 + Int64(tick) * tickMilliseconds
    }

    /// The end of the simulated days: "now" for the views the demo prints.
    var endMilliseconds: Int64 { Self.time(day: days, tick: 0) }

    /// HQ's reference data: the stores and a safety stock for every product in every store.
    func registerReferenceData(at hq: Replica) throws {
        for store in Self.stores {
            try ReferenceData.setStore(id: store.id, region: store.region, latitude: store.latitude, longitude: store.longitude,
                                       name: store.name, in: hq)
            for product in Self.products {
                _ = try ReferenceData.setThreshold(store: store.id, sku: product.sku, minimum: product.safetyStock, in: hq)
            }
        }
    }

    /// The morning stocktake of day one, by the first terminal of each store. The flagship
    /// store starts short of TV-55s, so the day's sales take it below its safety stock.
    mutating func openingStocktake(on terminals: [DemoNetwork.TerminalNode]) throws {
        for terminal in terminals where terminal.name.hasSuffix("-t1") {
            for product in Self.products {
                let count = terminal.store.id == "SH-01" && product.sku == "TV-55"
                    ? product.safetyStock + 2 : product.safetyStock + Int64.random(in: 6...14, using: &random)
                _ = try FieldActivity.recordSignal(.stocktake, sku: product.sku, quantity: count, guide: guide(of: terminal),
                                                   store: terminal.store.id, in: terminal.replica, now: Self.time(day: 0, tick: 0))
                written.stockSignals += 1
            }
        }
    }

    func guide(of terminal: DemoNetwork.TerminalNode) -> String {
        "g-" + terminal.name.lowercased()
    }

    /// Whether a terminal is online during a tick (most are; some drop out for a while).
    mutating func isOnline(_ terminal: DemoNetwork.TerminalNode) -> Bool {
        Int.random(in: 0..<10, using: &random) < 7
    }

    /// One guide's work during one tick: a few actions on the terminal's own replica.
    mutating func work(on terminal: DemoNetwork.TerminalNode, day: Int, tick: Int) throws {
        let now = Self.time(day: day, tick: tick)
        let store = terminal.store.id
        let guide = guide(of: terminal)
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            // In the order the story created them (ids are random), so choices replay exactly.
            let known = try Leads.list(store: store, in: terminal.replica).filter { $0.canonicalID == nil }
                .sorted { (creationOrder[$0.id] ?? Int.max, $0.id) < (creationOrder[$1.id] ?? Int.max, $1.id) }
            switch Int.random(in: 0..<10, using: &random) {
            case 0...2:
                // Mostly new customers; now and then one this store has met already.
                let customer = Int.random(in: 0..<6, using: &random) == 0
                    ? known.compactMap { lead in phones.firstIndex(of: lead.phone ?? "") }.randomElement(using: &random)
                        ?? Int.random(in: 0..<Self.customers.count, using: &random)
                    : Int.random(in: 0..<Self.customers.count, using: &random)
                // Customers come back: the same person may be entered again, here or at the
                // store's other terminal, which the hub's duplicate rule links to the first lead.
                let alreadyKnown = known.contains { $0.phone == phones[customer] }
                let id = try Leads.add(LeadDraft(customerName: Self.customers[customer], phone: phones[customer],
                                            source: Self.sources.randomElement(using: &random),
                                            score: Int64.random(in: 30...100, using: &random), ownerGuide: guide),
                                  store: store, in: terminal.replica, now: now)
                creationOrder[id] = creationOrder.count
                written.leads += 1
                if alreadyKnown { written.reenteredCustomers += 1 }
            case 3...4:
                guard let lead = known.filter({ !($0.stage.flatMap(FunnelStage.init(name:))?.isClosed ?? false) })
                    .randomElement(using: &random), let current = lead.stage.flatMap(FunnelStage.init(name:)) else { continue }
                // A terminal allows only the next step from what it knows; two guides moving the
                // same lead from stale copies while offline is what the hub's funnel rule sorts out.
                let forward = current.next.filter { $0 != .lost }
                let target = Int.random(in: 0..<5, using: &random) == 0 || forward.isEmpty ? FunnelStage.lost : forward[0]
                guard current.next.contains(target) else { continue }
                _ = try Leads.move(lead.id, to: target, store: store, in: terminal.replica, now: now)
                written.stageMoves += 1
            case 5...6:
                let lead = known.randomElement(using: &random)
                _ = try FieldActivity.logVisit(VisitDraft(guide: guide, lead: lead?.id, customerName: nil,
                                                          durationMinutes: Int64.random(in: 5...45, using: &random),
                                                          products: [Self.products.randomElement(using: &random)?.sku ?? "TV-55"],
                                                          outcome: "shown"),
                                               store: store, in: terminal.replica, now: now)
                written.visits += 1
            case 7:
                // Deliveries: a store short of a product gets a few in.
                let levels = try StockLedger.levels(in: terminal.replica, store: store)
                guard let short = levels.filter({ $0.stock < ($0.threshold ?? 0) + 2 }).randomElement(using: &random) else { continue }
                _ = try FieldActivity.recordSignal(.receipt, sku: short.sku, quantity: Int64.random(in: 4...8, using: &random),
                                                   guide: guide, store: store, in: terminal.replica, now: now)
                written.stockSignals += 1
            default:
                // The flagship store sells TVs fast; everyone sells a little of everything.
                let product = store == "SH-01" && Bool.random(using: &random)
                    ? Self.products[0] : Self.products.randomElement(using: &random) ?? Self.products[0]
                let quantity = Int64.random(in: 1...2, using: &random)
                let lead = Bool.random(using: &random) ? known.randomElement(using: &random)?.id : nil
                _ = try FieldActivity.recordSale(guide: guide, sku: product.sku, quantity: quantity,
                                                 amountCents: product.priceCents * quantity, lead: lead,
                                                 store: store, in: terminal.replica, now: now)
                written.sales += 1
                written.salesCents += product.priceCents * quantity
                written.stockSignals += 1
            }
        }
    }
}
