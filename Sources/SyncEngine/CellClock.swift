/// The per-column registers of one row of a last-writer-wins table, packed into one BLOB.
///
/// Per column, 20 bytes little-endian: HLC (8), site (4: the replica's small local number,
/// see `SiteTable`), local sequence of the last change (8). Packing the whole row's clock
/// into one metadata row is what keeps a logged write close to a raw one: one extra row
/// per row, not one per column.
struct CellClock {
    static let entrySize = 20

    var hlcs: [UInt64]
    var sites: [UInt32]
    var sequences: [UInt64]

    var count: Int { hlcs.count }

    /// Registers never written: version zero, sequence zero.
    init(empty count: Int) {
        hlcs = [UInt64](repeating: 0, count: count)
        sites = [UInt32](repeating: 0, count: count)
        sequences = [UInt64](repeating: 0, count: count)
    }

    /// Every register written by one write.
    init(count: Int, hlc: UInt64, site: UInt32, sequence: UInt64) {
        hlcs = [UInt64](repeating: hlc, count: count)
        sites = [UInt32](repeating: site, count: count)
        sequences = [UInt64](repeating: sequence, count: count)
    }

    /// Decodes a stored clock. A blob of the wrong size (a damaged file or a schema that
    /// changed under the replica) is reported, not trusted.
    init(bytes: UnsafeRawBufferPointer, columnCount: Int, table: String) throws(SyncError) {
        guard bytes.count == columnCount * Self.entrySize else {
            if bytes.isEmpty {
                self.init(empty: columnCount)
                return
            }
            throw SyncError.schemaMismatch(
                table: table, reason: "stored clock has \(bytes.count) bytes, expected \(columnCount * Self.entrySize)")
        }
        self.init(empty: columnCount)
        for column in 0..<columnCount {
            let base = column * Self.entrySize
            hlcs[column] = bytes.loadUnaligned(fromByteOffset: base, as: UInt64.self).littleEndian
            sites[column] = bytes.loadUnaligned(fromByteOffset: base + 8, as: UInt32.self).littleEndian
            sequences[column] = bytes.loadUnaligned(fromByteOffset: base + 12, as: UInt64.self).littleEndian
        }
    }

    var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: count * Self.entrySize)
        result.withUnsafeMutableBytes { buffer in
            for column in 0..<count {
                let base = column * Self.entrySize
                buffer.storeBytes(of: hlcs[column].littleEndian, toByteOffset: base, as: UInt64.self)
                buffer.storeBytes(of: sites[column].littleEndian, toByteOffset: base + 8, as: UInt32.self)
                buffer.storeBytes(of: sequences[column].littleEndian, toByteOffset: base + 12, as: UInt64.self)
            }
        }
        return result
    }

    mutating func set(_ column: Int, hlc: UInt64, site: UInt32, sequence: UInt64) {
        hlcs[column] = hlc
        sites[column] = site
        sequences[column] = sequence
    }
}
