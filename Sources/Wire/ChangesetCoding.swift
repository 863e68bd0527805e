import SyncEngine

// Changeset layout (PROTOCOL.md §4.3). Versions are written relative to the previous version
// in the stream and replica ids once per batch, inline at first use, so a cell costs a header
// varint plus its value in the common case where it shares its row's version.

/// Cell header varint: `column << 4 | sameVersion << 3 | valueTag`.
private let sameVersionFlag: UInt64 = 1 << 3

enum ValueTag {
    static let null: UInt8 = 0
    static let integer: UInt8 = 1
    static let real: UInt8 = 2
    static let text: UInt8 = 3
    static let blob: UInt8 = 4
}

extension Value {
    @inline(__always)
    var wireTag: UInt8 {
        switch self {
        case .null: return ValueTag.null
        case .integer: return ValueTag.integer
        case .real: return ValueTag.real
        case .text: return ValueTag.text
        case .blob: return ValueTag.blob
        }
    }
}

extension ByteWriter {
    /// The value's payload, without its tag.
    @inline(__always)
    mutating func valuePayload(_ value: Value) {
        switch value {
        case .null: break
        case .integer(let integer): svarint(integer)
        case .real(let real): fixed64(real.bitPattern)
        case .text(let text): string(text)
        case .blob(let blob): self.blob(blob)
        }
    }
}

extension RawWriter {
    @inline(__always)
    mutating func valuePayload(_ value: Value) {
        switch value {
        case .null: break
        case .integer(let integer): svarint(integer)
        case .real(let real): fixed64(real.bitPattern)
        case .text(let text): string(text)
        case .blob(let blob): self.blob(blob)
        }
    }
}

extension Value {
    /// Most bytes the payload takes: a length varint (≤ 10) plus the bytes, or a 10-byte varint.
    @inline(__always)
    var maxPayloadBytes: Int {
        switch self {
        case .null: return 0
        case .integer: return 10
        case .real: return 8
        case .text(let text): return 10 + text.utf8.count
        case .blob(let blob): return 10 + blob.count
        }
    }
}

extension ByteReader {
    @inline(__always)
    mutating func valuePayload(tag: UInt8) throws(WireError) -> Value {
        switch tag {
        case ValueTag.null: return .null
        case ValueTag.integer: return .integer(try svarint())
        case ValueTag.real: return .real(Double(bitPattern: try fixed64()))
        case ValueTag.text: return .text(try string())
        case ValueTag.blob: return .blob(try blob())
        default: throw WireError.badFrame("unknown value tag \(tag)")
        }
    }
}

/// Encoder state: the replica table built so far and the previous version.
private struct VersionWriter {
    var table = ReplicaIndex()
    // One-entry cache in front of the table: consecutive versions often share an origin.
    var cachedID = ReplicaID.none
    var cachedIndex = -1
    var previous = Version.zero

    /// Most bytes one version takes: ms delta (10), index word (10), counter (3), new id (16).
    static let maxBytes = 39

    @inline(__always)
    mutating func write(_ version: Version, to writer: inout RawWriter) {
        let milliseconds = version.hlc.rawValue >> 16
        let counter = version.hlc.rawValue & 0xffff
        // Both below 2^48: the difference cannot overflow.
        writer.svarint(Int64(milliseconds) - Int64(previous.hlc.rawValue >> 16))
        var index = cachedIndex
        var isNew = false
        if version.origin != cachedID || cachedIndex < 0 {
            (index, isNew) = table.indexInserting(version.origin)
            cachedID = version.origin
            cachedIndex = index
        }
        writer.uvarint(UInt64(index) << 1 | (counter != 0 ? 1 : 0))
        if counter != 0 { writer.uvarint(counter) }
        if isNew { writer.replicaID(version.origin) }
        previous = version
    }
}

/// Replica id → index in order of first use, by open addressing on the id's own bits.
///
/// Ids are random 128-bit values, so their bits need no further hashing; `Dictionary` would
/// run SipHash over 16 bytes for every cell whose origin differs from its neighbour's. Encoder
/// only: its input is the engine's own changeset, never a peer's choice of ids.
struct ReplicaIndex {
    private(set) var ids: [ReplicaID] = []
    /// Slot → index + 1 (0 = empty). Capacity a power of two, at most half full.
    private var slots = [Int32](repeating: 0, count: 64)

    var count: Int { ids.count }

    @inline(__always)
    private func slot(_ id: ReplicaID, mask: Int) -> Int {
        Int(truncatingIfNeeded: ((id.high ^ id.low) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// The id's index, adding it at the end if it is new.
    @inline(__always)
    mutating func indexInserting(_ id: ReplicaID) -> (index: Int, isNew: Bool) {
        let mask = slots.count - 1
        var position = slot(id, mask: mask)
        while true {
            let entry = Int(slots[position])
            if entry == 0 { break }
            if ids[entry - 1] == id { return (entry - 1, false) }
            position = (position + 1) & mask
        }
        let index = ids.count
        ids.append(id)
        slots[position] = Int32(truncatingIfNeeded: index + 1)
        if ids.count * 2 > slots.count { grow() }
        return (index, true)
    }

    private mutating func grow() {
        slots = [Int32](repeating: 0, count: slots.count * 2)
        let mask = slots.count - 1
        for (index, id) in ids.enumerated() {
            var position = slot(id, mask: mask)
            while slots[position] != 0 { position = (position + 1) & mask }
            slots[position] = Int32(truncatingIfNeeded: index + 1)
        }
    }
}

/// Decoder state mirroring `VersionWriter`.
private struct VersionReader {
    var replicas: [ReplicaID] = []
    // A seeded `Set`, not `ReplicaIndex`: a peer choosing ids could make an unseeded table's
    // probes quadratic. New ids are rare, so the hashing cost does not matter here.
    var seen: Set<ReplicaID> = []
    var previous = Version.zero

    @inline(__always)
    mutating func read(from reader: inout ByteReader) throws(WireError) -> Version {
        let delta = try reader.svarint()
        let previousMilliseconds = Int64(previous.hlc.rawValue >> 16)
        // |delta| may be anything a varint holds; only results inside 48 bits are valid.
        let (milliseconds, overflow) = previousMilliseconds.addingReportingOverflow(delta)
        guard !overflow, milliseconds >= 0, milliseconds <= Int64(HLCTimestamp.millisecondMask) else {
            throw WireError.badFrame("version milliseconds outside 48 bits")
        }
        let word = try reader.uvarint()
        var counter: UInt64 = 0
        if word & 1 != 0 {
            counter = try reader.uvarint()
            // Canonical form: the flag is set exactly when the counter is not zero.
            guard counter != 0, counter <= 0xffff else { throw WireError.badFrame("version counter out of range") }
        }
        let index = word >> 1
        let origin: ReplicaID
        if index < UInt64(replicas.count) {
            origin = replicas[Int(index)]
        } else if index == UInt64(replicas.count) {
            origin = try reader.replicaID()
            // Canonical form: an id enters the table once; a repeat would also let one batch
            // grow the table without bound for the same ids.
            guard seen.insert(origin).inserted else { throw WireError.badFrame("replica id defined twice") }
            replicas.append(origin)
        } else {
            throw WireError.badFrame("replica index beyond the table")
        }
        let version = Version(hlc: HLCTimestamp(rawValue: UInt64(milliseconds) << 16 | counter), origin: origin)
        previous = version
        return version
    }
}

extension ByteWriter {
    /// Writes through `RawWriter` in row-sized steps: each step first computes an upper bound of
    /// its bytes from the values it will write (see `withReserved`).
    mutating func changeset(_ changeset: Changeset) throws(WireError) {
        try withReserved(16 + 3 * 10) { writer in
            writer.replicaID(changeset.source)
            writer.uvarint(changeset.fromSequence)
            writer.uvarint(changeset.toSequence)
            writer.uvarint(UInt64(changeset.tables.count))
        }
        var versions = VersionWriter()
        // PROTOCOL.md §4: a table once per changeset, a column once per table, a cell once per
        // column of its row; the decoder refuses repeats, so the encoder never writes one.
        var tableNames = Set<TableName>()
        for table in changeset.tables {
            guard tableNames.insert(table.table).inserted else { throw WireError.badFrame("table \(table.table.rawValue) appears twice") }
            guard Set(table.columns).count == table.columns.count else {
                throw WireError.badFrame("a column of \(table.table.rawValue) is listed twice")
            }
            var cellRow = [Int](repeating: -1, count: table.columns.count)
            var rowIndex = 0
            var headerBound = 30 + table.table.rawValue.utf8.count
            for column in table.columns { headerBound += 10 + column.rawValue.utf8.count }
            try withReserved(headerBound) { writer in
                writer.string(table.table.rawValue)
                writer.uvarint(UInt64(table.columns.count))
                for column in table.columns { writer.string(column.rawValue) }
                writer.uvarint(UInt64(table.rows.count))
            }
            let columnCount = table.columns.count
            for row in table.rows {
                // pk (10 + bytes), causal length (10), life version, cell count (10);
                // per cell: header (10), version, value.
                var bound = 30 + row.primaryKey.utf8.count + VersionWriter.maxBytes
                for cell in row.cells { bound += 10 + VersionWriter.maxBytes + cell.value.maxPayloadBytes }
                for cell in row.cells where cell.column >= 0 && cell.column < columnCount {
                    guard cellRow[cell.column] != rowIndex else { throw WireError.badFrame("two cells of one row name the same column") }
                    cellRow[cell.column] = rowIndex
                }
                rowIndex += 1
                try withReserved(bound) { (writer: inout RawWriter) throws(WireError) in
                    writer.string(row.primaryKey)
                    writer.uvarint(row.causalLength)
                    versions.write(row.lifeVersion, to: &writer)
                    writer.uvarint(UInt64(row.cells.count))
                    for cell in row.cells {
                        guard cell.column >= 0 && cell.column < columnCount else {
                            throw WireError.badFrame("cell column index outside the table's columns")
                        }
                        let header = UInt64(cell.column) << 4 | UInt64(cell.value.wireTag)
                        if cell.version == versions.previous {
                            writer.uvarint(header | sameVersionFlag)
                        } else {
                            writer.uvarint(header)
                            versions.write(cell.version, to: &writer)
                        }
                        writer.valuePayload(cell.value)
                    }
                }
            }
        }
        finishReserved()
    }
}

extension ByteReader {
    mutating func changeset() throws(WireError) -> Changeset {
        let source = try replicaID()
        let fromSequence = try uvarint()
        let toSequence = try uvarint()
        let tableCount = try count("table")
        var tables: [TableChanges] = []
        tables.reserveCapacity(tableCount)
        var versions = VersionReader()
        // Repeats are refused (PROTOCOL.md §4): a table once per changeset, a column once per
        // table, a cell once per column of its row. Tables and columns are few; cells are checked
        // with one stamp per column (the index of the last row that had a cell there).
        var tableNames = Set<TableName>()
        for _ in 0..<tableCount {
            // Read first, validate second: `try?` must not swallow INVALID_UTF8 or BAD_FRAME.
            let tableName = try string()
            guard let table = try? TableName(tableName) else { throw WireError.invalidName }
            guard tableNames.insert(table).inserted else { throw WireError.badFrame("a table appears twice in one changeset") }
            let columnCount = try count("column")
            var columns: [ColumnName] = []
            columns.reserveCapacity(columnCount)
            var columnNames = Set<ColumnName>()
            for _ in 0..<columnCount {
                let columnName = try string()
                guard let column = try? ColumnName(columnName) else { throw WireError.invalidName }
                guard columnNames.insert(column).inserted else { throw WireError.badFrame("a column is listed twice for one table") }
                columns.append(column)
            }
            let rowCount = try count("row")
            var rows: [RowChange] = []
            rows.reserveCapacity(rowCount)
            var cellRow = [Int](repeating: -1, count: columnCount)
            for rowIndex in 0..<rowCount {
                let primaryKey = try string()
                let causalLength = try uvarint()
                let lifeVersion = try versions.read(from: &self)
                let cellCount = try count("cell")
                var cells: [Cell] = []
                cells.reserveCapacity(cellCount)
                for _ in 0..<cellCount {
                    let header = try uvarint()
                    let column = header >> 4
                    guard column < UInt64(columnCount) else { throw WireError.badFrame("cell column index outside the table's columns") }
                    guard cellRow[Int(column)] != rowIndex else { throw WireError.badFrame("two cells of one row name the same column") }
                    cellRow[Int(column)] = rowIndex
                    let version: Version
                    if header & sameVersionFlag != 0 {
                        version = versions.previous
                    } else {
                        let before = versions.previous
                        version = try versions.read(from: &self)
                        // Canonical form: a cell that repeats the previous version must use the flag.
                        guard version != before else { throw WireError.badFrame("explicit version equal to the previous one") }
                    }
                    let value = try valuePayload(tag: UInt8(truncatingIfNeeded: header & 0x7))
                    cells.append(Cell(column: Int(column), value: value, version: version))
                }
                rows.append(RowChange(primaryKey: primaryKey, causalLength: causalLength, lifeVersion: lifeVersion, cells: cells))
            }
            tables.append(TableChanges(table: table, columns: columns, rows: rows))
        }
        return Changeset(source: source, fromSequence: fromSequence, toSequence: toSequence, tables: tables)
    }
}
