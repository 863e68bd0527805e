/// The per-column registers of one row of a last-writer-wins table, packed into one BLOB.
///
/// Per column, 12 bytes little-endian: HLC (8) and site (4: the replica's small local number,
/// see `SiteTable`). Packing the whole row's clock
/// into one metadata row is what keeps a logged write close to a raw one: one extra row
/// per row, not one per column. When every column holds the same entry (a row as inserted
/// or merged in one piece, the common case) the blob is that one entry: 12 bytes, not 12
/// per column, because bytes written are what a logged insert pays for.
struct CellClock {
    static let entrySize = 12

    /// Either one entry (all columns alike) or `count` entries.
    private var storage: [UInt8]
    let count: Int

    private var isUniform: Bool { storage.count == Self.entrySize && count != 1 }

    /// The blob to store: one entry when all columns are alike.
    var bytes: [UInt8] {
        if isUniform || count == 0 { return storage }
        let first = storage[0..<Self.entrySize]
        for column in 1..<count where storage[column * Self.entrySize ..< (column + 1) * Self.entrySize] != first {
            return storage
        }
        return Array(first)
    }

    private func offset(_ column: Int) -> Int { isUniform ? 0 : column * Self.entrySize }

    /// Registers never written: version zero, sequence zero.
    init(empty count: Int) {
        self.count = count
        storage = [UInt8](repeating: 0, count: Self.entrySize)
    }

    /// Every register written by one write.
    init(count: Int, hlc: UInt64, site: UInt32) {
        self.init(empty: count)
        storage.withUnsafeMutableBytes { Self.store($0, 0, hlc: hlc, site: site) }
    }

    private init(count: Int, storage: [UInt8]) {
        self.count = count
        self.storage = storage
    }

    /// Registers from per-column versions (0 and site 0: never written).
    init(hlcs: [UInt64], sites: [UInt32]) {
        let count = hlcs.count
        if count > 0, hlcs[0] != 0, hlcs.allSatisfy({ $0 == hlcs[0] }), sites.allSatisfy({ $0 == sites[0] }) {
            self.init(count: count, hlc: hlcs[0], site: sites[0])
            return
        }
        var storage = [UInt8](repeating: 0, count: max(1, count) * Self.entrySize)
        storage.withUnsafeMutableBytes { buffer in
            for column in 0..<count where hlcs[column] != 0 || sites[column] != 0 {
                Self.store(buffer, column * Self.entrySize, hlc: hlcs[column], site: sites[column])
            }
        }
        self.init(count: count, storage: storage)
    }

    /// Decodes a stored clock. A blob of the wrong size (a damaged file or a schema that
    /// changed under the replica) is reported, not trusted; an empty one is a tombstone's.
    init(bytes stored: UnsafeRawBufferPointer, columnCount: Int, table: String) throws(SyncError) {
        count = columnCount
        if stored.isEmpty {
            storage = [UInt8](repeating: 0, count: Self.entrySize)
            return
        }
        guard stored.count == columnCount * Self.entrySize || stored.count == Self.entrySize else {
            throw SyncError.schemaMismatch(
                table: table, reason: "stored clock has \(stored.count) bytes, expected \(columnCount * Self.entrySize)")
        }
        storage = Array(stored)
    }

    func hlc(_ column: Int) -> UInt64 {
        storage.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset(column), as: UInt64.self).littleEndian }
    }

    func site(_ column: Int) -> UInt32 {
        storage.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset(column) + 8, as: UInt32.self).littleEndian }
    }

    var highestHLC: UInt64 { (0..<count).map { hlc($0) }.max() ?? 0 }

    mutating func set(_ column: Int, hlc: UInt64, site: UInt32) {
        if isUniform {
            // Columns start to differ: spread the shared entry to every column first.
            var expanded: [UInt8] = []
            expanded.reserveCapacity(count * Self.entrySize)
            for _ in 0..<count { expanded.append(contentsOf: storage) }
            storage = expanded
        }
        storage.withUnsafeMutableBytes { Self.store($0, column * Self.entrySize, hlc: hlc, site: site) }
    }

    private static func store(_ buffer: UnsafeMutableRawBufferPointer, _ base: Int, hlc: UInt64, site: UInt32) {
        buffer.storeBytes(of: hlc.littleEndian, toByteOffset: base, as: UInt64.self)
        buffer.storeBytes(of: site.littleEndian, toByteOffset: base + 8, as: UInt32.self)
    }
}
