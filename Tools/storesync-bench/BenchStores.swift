import Retail
import SyncEngine

/// The reference data an operator registers before the terminals' day: one `stores` row per
/// store (region, coordinates), and with thresholds the safety stock of the first
/// `thresholdSKUs` hot SKUs of every store.
///
/// It is written with the CLI's own calls (`ReferenceData.setStore`, `setThreshold`) into an
/// operator replica *before* any terminal writes, so every threshold is older than the signals
/// that cross it (a threshold applies from when it was set). Each hub then applies it as one
/// changeset, as if the operator had synced with it: every hub of a run holds the same rows
/// with the same versions.
struct BenchStores {
    /// SKUs every store stocks; the rules mix sells them (`RetailWorkload+Rules.swift`).
    static let hotSKUs = ["TV-55", "TV-65", "PHONE-X", "PHONE-S", "LAPTOP-14", "TABLET-11", "WATCH-2", "SOUNDBAR"]
    static let thresholdSKUs = 3
    static let safetyStock: Int64 = 4

    let changeset: Changeset
    let stores: Int
    let thresholds: Int

    /// Registers stores `storeID(1)…storeID(count)`, store n in `region(n)`.
    init(count: Int, region: (Int) -> String, thresholds withThresholds: Bool, in operatorReplica: Replica) throws {
        var thresholds = 0
        for number in 1...max(1, count) {
            let store = storeID(number)
            try ReferenceData.setStore(id: store, region: region(number), latitude: Self.latitude(number),
                                       longitude: Self.longitude(number), name: nil, in: operatorReplica)
            guard withThresholds else { continue }
            for sku in Self.hotSKUs.prefix(Self.thresholdSKUs) {
                try ReferenceData.setThreshold(store: store, sku: sku, minimum: Self.safetyStock, in: operatorReplica)
                thresholds += 1
            }
        }
        let batch = try operatorReplica.nextBatch(since: 0)
        guard !batch.more else { throw BenchError.setup("the reference data did not fit one batch") }
        changeset = batch.changeset
        stores = max(1, count)
        self.thresholds = thresholds
    }

    /// Ten stores per region: R01 holds S001…S010.
    static func tenPerRegion(_ number: Int) -> String { "R" + String((number - 1) / 10 + 1).leftPadded(to: 2) }

    /// Positions spread over about 100 × 100 km, so every store has distinct neighbours.
    static func latitude(_ number: Int) -> Double { 30.5 + Double(number * 37 % 100) / 100 }
    static func longitude(_ number: Int) -> Double { 120.5 + Double(number * 53 % 100) / 100 }

    /// Applies the reference data to a hub's replica (before it serves anyone).
    func register(on hub: Replica) throws {
        _ = try hub.apply(changeset)
    }
}
