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
    var indices: [ReplicaID: Int] = [:]
    var tableCount = 0
    // One-entry cache in front of the dictionary: consecutive versions mostly share an origin.
    var cachedID = ReplicaID.none
    var cachedIndex = -1
    var previous = Version.zero

    @inline(__always)
    mutating func write(_ version: Version, to writer: inout ByteWriter) {
        writer.svarint(Int64(bitPattern: version.hlc.rawValue &- previous.hlc.rawValue))
        if version.origin == cachedID && cachedIndex >= 0 {
            writer.uvarint(cachedIndex)
        } else if let index = indices[version.origin] {
            writer.uvarint(index)
            cachedID = version.origin
            cachedIndex = index
        } else {
            // First use: the next index, followed by the 16 bytes of the id.
            let index = tableCount
            tableCount += 1
            indices[version.origin] = index
            writer.uvarint(index)
            writer.replicaID(version.origin)
            cachedID = version.origin
            cachedIndex = index
        }
        previous = version
    }
}

/// Decoder state mirroring `VersionWriter`.
private struct VersionReader {
    var replicas: [ReplicaID] = []
    var seen: Set<ReplicaID> = []
    var previous = Version.zero

    @inline(__always)
    mutating func read(from reader: inout ByteReader) throws(WireError) -> Version {
        let delta = try reader.svarint()
        let hlc = HLCTimestamp(rawValue: previous.hlc.rawValue &+ UInt64(bitPattern: delta))
        let index = try reader.uvarint()
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
        let version = Version(hlc: hlc, origin: origin)
        previous = version
        return version
    }
}

extension ByteWriter {
    mutating func changeset(_ changeset: Changeset) throws(WireError) {
        replicaID(changeset.source)
        uvarint(changeset.fromSequence)
        uvarint(changeset.toSequence)
        uvarint(changeset.tables.count)
        var versions = VersionWriter()
        for table in changeset.tables {
            string(table.table.rawValue)
            uvarint(table.columns.count)
            for column in table.columns { string(column.rawValue) }
            let columnCount = table.columns.count
            uvarint(table.rows.count)
            for row in table.rows {
                string(row.primaryKey)
                uvarint(row.causalLength)
                versions.write(row.lifeVersion, to: &self)
                uvarint(row.cells.count)
                for cell in row.cells {
                    guard cell.column >= 0 && cell.column < columnCount else {
                        throw WireError.badFrame("cell column index outside the table's columns")
                    }
                    let header = UInt64(cell.column) << 4 | UInt64(cell.value.wireTag)
                    if cell.version == versions.previous {
                        uvarint(header | sameVersionFlag)
                    } else {
                        uvarint(header)
                        versions.write(cell.version, to: &self)
                    }
                    valuePayload(cell.value)
                }
            }
        }
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
        for _ in 0..<tableCount {
            // Read first, validate second: `try?` must not swallow INVALID_UTF8 or BAD_FRAME.
            let tableName = try string()
            guard let table = try? TableName(tableName) else { throw WireError.invalidName }
            let columnCount = try count("column")
            var columns: [ColumnName] = []
            columns.reserveCapacity(columnCount)
            for _ in 0..<columnCount {
                let columnName = try string()
                guard let column = try? ColumnName(columnName) else { throw WireError.invalidName }
                columns.append(column)
            }
            let rowCount = try count("row")
            var rows: [RowChange] = []
            rows.reserveCapacity(rowCount)
            for _ in 0..<rowCount {
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
