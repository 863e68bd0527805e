import CSQLite

/// SQLite copies the bytes of a value bound with this destructor before the call returns.
let transientDestructor = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// A prepared statement. Finalized when released.
///
/// A statement belongs to the connection that prepared it and, like it, to one
/// thread or serial queue at a time.
public final class Statement {
    let handle: OpaquePointer
    let connection: OpaquePointer
    public let sql: String

    init(connection: OpaquePointer, sql: String) throws {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK else {
            throw SQLiteError(connection: connection, code: code, sql: sql)
        }
        guard let statement else {
            // Blank SQL or only a comment: SQLite returns OK with no statement.
            throw SQLiteError(code: SQLITE_MISUSE, message: "empty statement", sql: sql)
        }
        self.handle = statement
        self.connection = connection
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    public var parameterCount: Int32 { sqlite3_bind_parameter_count(handle) }
    public var columnCount: Int32 { sqlite3_column_count(handle) }

    public func columnName(at index: Int32) -> String {
        sqlite3_column_name(handle, index).map { String(cString: $0) } ?? ""
    }

    // MARK: Binding (indices start at 1, as in SQLite)

    @inline(__always)
    private func check(_ code: Int32) throws {
        if code != SQLITE_OK { throw SQLiteError(connection: connection, code: code, sql: sql) }
    }

    public func bindNull(at index: Int32) throws {
        try check(sqlite3_bind_null(handle, index))
    }

    public func bind(_ value: Int64, at index: Int32) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    public func bind(_ value: Double, at index: Int32) throws {
        try check(sqlite3_bind_double(handle, index, value))
    }

    public func bind(_ value: String, at index: Int32) throws {
        var value = value
        let code = value.withUTF8 { buffer -> Int32 in
            // A zero-length buffer may have a nil base address; bind an empty string, not NULL.
            guard let base = buffer.baseAddress else {
                return sqlite3_bind_text(handle, index, "", 0, transientDestructor)
            }
            guard buffer.count <= Int(Int32.max) else { return SQLITE_TOOBIG }
            return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                sqlite3_bind_text(handle, index, $0, Int32(buffer.count), transientDestructor)
            }
        }
        try check(code)
    }

    public func bind(_ value: [UInt8], at index: Int32) throws {
        let code = value.withUnsafeBytes { buffer -> Int32 in
            guard let base = buffer.baseAddress, buffer.count > 0 else {
                return sqlite3_bind_zeroblob(handle, index, 0)
            }
            guard buffer.count <= Int(Int32.max) else { return SQLITE_TOOBIG }
            return sqlite3_bind_blob(handle, index, base, Int32(buffer.count), transientDestructor)
        }
        try check(code)
    }

    public func bind(_ value: SQLValue, at index: Int32) throws {
        switch value {
        case .null: try bindNull(at: index)
        case .integer(let v): try bind(v, at: index)
        case .real(let v): try bind(v, at: index)
        case .text(let v): try bind(v, at: index)
        case .blob(let v): try bind(v, at: index)
        }
    }

    /// Resets the statement and binds `values` to parameters 1...n.
    public func bind(_ values: [SQLValue]) throws {
        reset()
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    // MARK: Running

    /// Makes the statement ready to run again; bindings are kept until rebound.
    public func reset() {
        // The error of a previous step is reported by that step; reset repeats it, so ignore it here.
        _ = sqlite3_reset(handle)
    }

    /// Advances to the next row. Returns `false` when the statement is done.
    @discardableResult
    public func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = SQLiteError(connection: connection, code: code, sql: sql)
            reset()
            throw error
        }
    }

    /// Binds `values`, runs the statement to completion and resets it.
    public func execute(_ values: [SQLValue] = []) throws {
        try bind(values)
        defer { reset() }
        while try step() {}
    }

    /// Binds `values` and calls `body` for each row, then resets the statement.
    public func forEachRow(_ values: [SQLValue] = [], _ body: (Row) throws -> Void) throws {
        try bind(values)
        defer { reset() }
        while try step() {
            try body(Row(statement: self))
        }
    }

    /// Binds `values` and returns every row as an array of values.
    public func fetchAll(_ values: [SQLValue] = []) throws -> [[SQLValue]] {
        var rows: [[SQLValue]] = []
        try forEachRow(values) { rows.append($0.values) }
        return rows
    }

    /// Binds `values` and returns the first row, if any.
    public func fetchOne(_ values: [SQLValue] = []) throws -> [SQLValue]? {
        try bind(values)
        defer { reset() }
        return try step() ? Row(statement: self).values : nil
    }

    // MARK: Reading the current row (indices start at 0, as in SQLite)

    public func columnType(at index: Int32) -> Int32 { sqlite3_column_type(handle, index) }

    public func int64(at index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    public func double(at index: Int32) -> Double { sqlite3_column_double(handle, index) }

    /// The column as text; NULL reads as nil.
    public func text(at index: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// The column as bytes; NULL and empty blobs read as an empty array.
    public func blob(at index: Int32) -> [UInt8] {
        guard let pointer = sqlite3_column_blob(handle, index) else { return [] }
        let count = Int(sqlite3_column_bytes(handle, index))
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with the column's bytes without copying them; valid only inside `body`.
    public func withBlob<T>(at index: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        guard let pointer = sqlite3_column_blob(handle, index) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let count = Int(sqlite3_column_bytes(handle, index))
        return try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public func value(at index: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER: return .integer(int64(at: index))
        case SQLITE_FLOAT: return .real(double(at: index))
        case SQLITE_TEXT: return .text(text(at: index) ?? "")
        case SQLITE_BLOB: return .blob(blob(at: index))
        default: return .null
        }
    }
}

/// The current row of a statement being stepped. Valid only until the next step.
public struct Row {
    let statement: Statement

    public var count: Int { Int(statement.columnCount) }

    public subscript(index: Int) -> SQLValue { statement.value(at: Int32(index)) }

    public func int64(_ index: Int) -> Int64 { statement.int64(at: Int32(index)) }
    public func double(_ index: Int) -> Double { statement.double(at: Int32(index)) }
    public func text(_ index: Int) -> String? { statement.text(at: Int32(index)) }
    public func blob(_ index: Int) -> [UInt8] { statement.blob(at: Int32(index)) }
    public func withBlob<T>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try statement.withBlob(at: Int32(index), body)
    }
    public func isNull(_ index: Int) -> Bool { statement.columnType(at: Int32(index)) == SQLITE_NULL }

    public var values: [SQLValue] { (0..<count).map { self[$0] } }
}
