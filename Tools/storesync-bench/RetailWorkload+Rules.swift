import Retail
import SyncEngine

/// The rules mix: a terminal's day that gives each central rule of the hub real work.
///
/// - Stock (promotion rule): at opening the guide counts every hot SKU (a stocktake of
///   `openingStock`); each sale comes with its sale signal, as `storesync sale record` writes
///   one, on a hot SKU; a SKU's 12th sale is followed by a receipt of `restock` units. Stock
///   falls through the safety threshold (`BenchStores.safetyStock`, set on the first
///   `BenchStores.thresholdSKUs` SKUs of every store before the day) about once per pair
///   towards the end of the day: crossings whose suggestions go to the nearest stores of the
///   region that have the SKU.
/// - Funnel (funnel rule): a third of the leads move to needs-confirmed, half of those on to
///   demo, each move written with its previous stage as `storesync lead move` writes it; one
///   lead in 20 skips from reached to negotiation (refused and compensated by the hub) and one
///   in 30 is lost.
/// - Duplicates (duplicate rule): one lead in 25 has the phone of the lead entered 7 before it.
///
/// Per cycle: two leads, a visit, a sale of a hot SKU and its signal (51 cells). The share of
/// lead cells is a little lower than in the plain mix (59 % instead of 67 %).
extension RetailWorkload {
    static let openingStock: Int64 = 30
    static let restock: Int64 = 20
    static let restockAfterSales = 12
    static let duplicateEvery = 25
    static let duplicateOf = 7

    func signal(store: String, guide: String, sku: String, kind: SignalKind, quantity: Int64, at milliseconds: UInt64) throws -> [ColumnName: Value] {
        try row(signals, [
            ("store", .text(store)), ("sku", .text(sku)), ("kind", .text(kind.rawValue)),
            ("quantity", .integer(quantity)), ("at_ms", .integer(Int64(milliseconds))), ("guide", .text(guide)),
        ])
    }

    func writeRulesDay(terminal: Int, store: String, cells: Int, into replica: Replica) throws -> Int {
        var random = SplitMix64(seed: UInt64(terminal) &+ 0xBE7C)
        var written = 0
        var rows: [(TableName, String, [ColumnName: Value])] = []
        var leadKeys: [String] = []
        var salesOfSKU = [Int](repeating: 0, count: BenchStores.hotSKUs.count)
        func key(_ milliseconds: UInt64) -> String { UniqueID.make(milliseconds: milliseconds, using: &random) }

        let opening = Self.startMilliseconds - 3_600_000
        for sku in BenchStores.hotSKUs {
            rows.append((signals.name, key(opening), try signal(store: store, guide: "G\(terminal + 1)-0", sku: sku, kind: .stocktake,
                                                                quantity: Self.openingStock, at: opening)))
            written += signals.columns.count
        }
        var index = 0
        while written < cells {
            let milliseconds = Self.startMilliseconds + UInt64(index) * 60_000
            let guide = "G\(terminal + 1)-\(index % 6)"
            let cycle = index / 5
            switch index % 5 {
            case 0, 1:
                let number = leadKeys.count
                let duplicate = number % Self.duplicateEvery == Self.duplicateEvery - 1 && number >= Self.duplicateOf
                let phoneIndex = duplicate ? Self.leadIndex(number - Self.duplicateOf) : index
                let leadKey = key(milliseconds)
                rows.append((leads.name, leadKey, try lead(store: store, guide: guide, index: index, phoneIndex: phoneIndex, at: milliseconds)))
                leadKeys.append(leadKey)
                written += leads.columns.count
            case 2:
                rows.append((visits.name, key(milliseconds), try visit(store: store, guide: guide, lead: leadKeys.last ?? "", index: index, at: milliseconds)))
                written += visits.columns.count
            case 3:
                let sku = BenchStores.hotSKUs[cycle % BenchStores.hotSKUs.count]
                rows.append((sales.name, key(milliseconds), try sale(store: store, guide: guide, lead: leadKeys.last ?? "", index: index,
                                                                     sku: sku, at: milliseconds)))
                written += sales.columns.count
            default:
                // The sale's signal (index - 1 is the sale's index), then a receipt after the SKU's 12th sale.
                let skuIndex = cycle % BenchStores.hotSKUs.count
                let sku = BenchStores.hotSKUs[skuIndex]
                rows.append((signals.name, key(milliseconds), try signal(store: store, guide: guide, sku: sku, kind: .sale,
                                                                         quantity: -Self.saleQuantity(index - 1), at: milliseconds)))
                written += signals.columns.count
                salesOfSKU[skuIndex] += 1
                if salesOfSKU[skuIndex] == Self.restockAfterSales {
                    rows.append((signals.name, key(milliseconds + 1), try signal(store: store, guide: guide, sku: sku, kind: .receipt,
                                                                                 quantity: Self.restock, at: milliseconds + 1)))
                    written += signals.columns.count
                }
            }
            index += 1
        }
        try insert(rows, into: replica)

        // Stage moves, one transaction per step as guides make them (later than the inserts).
        let touched = Int64(Self.startMilliseconds) + 86_400_000
        func move(_ to: String, from: String) throws -> [ColumnName: Value] {
            try row(leads, [("stage", .text(to)), ("previous_stage", .text(from)), ("last_touch_ms", .integer(touched))])
        }
        let stages = Self.stages
        var firstStep: [(String, [ColumnName: Value])] = []
        var secondStep: [(String, [ColumnName: Value])] = []
        for (number, leadKey) in leadKeys.enumerated() {
            if number % 3 == 0 {
                firstStep.append((leadKey, try move(stages[1], from: stages[0])))
                if number % 6 == 0 { secondStep.append((leadKey, try move(stages[2], from: stages[1]))) }
            } else if number % 20 == 1 {
                firstStep.append((leadKey, try move(stages[3], from: stages[0])))
            } else if number % 30 == 2 {
                firstStep.append((leadKey, try move(stages[5], from: stages[0])))
            }
        }
        try update(firstStep, into: replica)
        try update(secondStep, into: replica)
        return rows.count
    }

    /// The cycle index (`index` in `writeRulesDay`) of the `number`th lead: two leads per five rows.
    private static func leadIndex(_ number: Int) -> Int { number / 2 * 5 + number % 2 }
}
