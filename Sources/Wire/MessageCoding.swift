import SyncEngine

// Payload layouts of every message (PROTOCOL.md §5). Each encoder and decoder pair lists the
// fields in the same order; the decoder refuses anything the encoder would not have written,
// so every accepted frame re-encodes to the same bytes.

extension ByteWriter {
    mutating func payload(of message: Message) throws(WireError) {
        switch message {
        case .hello(let hello):
            uvarint(hello.protocolVersions.count)
            for version in hello.protocolVersions { uvarint(UInt64(version)) }
            replicaID(hello.replica)
            byte(hello.role.rawValue)
            string(hello.scope)
            fixed64(hello.clock.rawValue)
            blob(hello.credentials)
            if hello.carriesLease {
                guard hello.lease.isEmpty || hello.lease.count == Lease.byteCount else {
                    throw WireError.badFrame("a lease is 0 or 16 bytes")
                }
                blob(hello.lease)
            } else if !hello.lease.isEmpty {
                throw WireError.badFrame("a HELLO that does not list protocol version 2 carries no lease")
            }
        case .helloAck(let ack):
            uvarint(UInt64(ack.protocolVersion))
            replicaID(ack.replica)
            fixed64(ack.clock.rawValue)
            uvarint(ack.pushCursor)
            uvarint(ack.latestSequence)
            uvarint(UInt64(ack.limits.maxFrameBytes))
            uvarint(UInt64(ack.limits.maxBatchCells))
            uvarint(UInt64(ack.limits.idleTimeoutMilliseconds))
            if ack.protocolVersion == 2 {
                guard let drift = ack.maxClockDriftMilliseconds, let lease = ack.lease, lease.count == Lease.byteCount else {
                    throw WireError.badFrame("a version 2 HELLO_ACK carries the clock drift and a 16-byte lease")
                }
                uvarint(UInt64(drift))
                blob(lease)
            } else if ack.maxClockDriftMilliseconds != nil || ack.lease != nil {
                throw WireError.badFrame("only a version 2 HELLO_ACK carries the clock drift and a lease")
            }
        case .push(let changeset):
            try self.changeset(changeset)
        case .pushAck(let sequence):
            uvarint(sequence)
        case .pull(let pull):
            uvarint(pull.fromSequence)
            uvarint(UInt64(pull.maxCells))
            bool(pull.live)
        case .pullBatch(let batch):
            bool(batch.more)
            try changeset(batch.changeset)
        case .notify(let sequence):
            uvarint(sequence)
        case .ping(let nonce), .pong(let nonce):
            uvarint(nonce)
        case .viewRequest(let request):
            uvarint(request.requestID)
            string(request.view)
            uvarint(request.parameters.count)
            for parameter in request.parameters {
                string(parameter.name)
                string(parameter.value)
            }
        case .viewRows(let rows):
            uvarint(rows.requestID)
            bool(rows.final)
            uvarint(rows.columns.count)
            for column in rows.columns { string(column) }
            if rows.columns.isEmpty && !rows.rows.isEmpty {
                throw WireError.badFrame("view rows without columns")
            }
            uvarint(rows.rows.count)
            for row in rows.rows {
                guard row.count == rows.columns.count else {
                    throw WireError.badFrame("view row with a value count different from the column count")
                }
                for value in row {
                    byte(value.wireTag)
                    valuePayload(value)
                }
            }
        case .error(let error):
            uvarint(UInt64(error.code.rawValue))
            string(error.message)
            if let clock = error.serverClock {
                byte(1)
                fixed64(clock.rawValue)
            } else {
                byte(0)
            }
            if let retry = error.retryAfterMilliseconds {
                byte(1)
                uvarint(UInt64(retry))
            } else {
                byte(0)
            }
        }
    }
}

extension ByteReader {
    /// Decodes the whole payload of a message of `type`; trailing bytes are BAD_FRAME.
    mutating func message(of type: MessageType) throws(WireError) -> Message {
        let message = try messageFields(of: type)
        guard isAtEnd else { throw WireError.badFrame("\(remaining) bytes after the last field of \(type)") }
        return message
    }

    private mutating func messageFields(of type: MessageType) throws(WireError) -> Message {
        switch type {
        case .hello:
            let versionCount = try count("protocol version")
            var versions: [UInt16] = []
            versions.reserveCapacity(versionCount)
            for _ in 0..<versionCount { versions.append(try uvarint(as: UInt16.self, "protocol version")) }
            let replica = try replicaID()
            guard let role = Role(rawValue: try byte()) else { throw WireError.badFrame("unknown role") }
            let scope = try string()
            let clock = HLCTimestamp(rawValue: try fixed64())
            let credentials = try blob()
            var lease: [UInt8] = []
            if versions.contains(2) {
                lease = try blob()
                guard lease.isEmpty || lease.count == Lease.byteCount else { throw WireError.badFrame("a lease is 0 or 16 bytes") }
            }
            return .hello(Hello(protocolVersions: versions, replica: replica, role: role, scope: scope, clock: clock, credentials: credentials,
                                lease: lease))
        case .helloAck:
            let version = try uvarint(as: UInt16.self, "protocol version")
            let replica = try replicaID()
            let clock = HLCTimestamp(rawValue: try fixed64())
            let pushCursor = try uvarint()
            let latest = try uvarint()
            let limits = SessionLimits(
                maxFrameBytes: try uvarint(as: UInt32.self, "max frame bytes"),
                maxBatchCells: try uvarint(as: UInt32.self, "max batch cells"),
                idleTimeoutMilliseconds: try uvarint(as: UInt32.self, "idle timeout")
            )
            var drift: UInt32?
            var lease: [UInt8]?
            if version == 2 {
                drift = try uvarint(as: UInt32.self, "max clock drift")
                let issued = try blob()
                guard issued.count == Lease.byteCount else { throw WireError.badFrame("a HELLO_ACK lease is 16 bytes") }
                lease = issued
            }
            return .helloAck(HelloAck(protocolVersion: version, replica: replica, clock: clock, pushCursor: pushCursor, latestSequence: latest,
                                      limits: limits, maxClockDriftMilliseconds: drift, lease: lease))
        case .push:
            return .push(try changeset())
        case .pushAck:
            return .pushAck(acknowledgedSequence: try uvarint())
        case .pull:
            let from = try uvarint()
            let maxCells = try uvarint(as: UInt32.self, "max cells")
            let live = try bool()
            return .pull(Pull(fromSequence: from, maxCells: maxCells, live: live))
        case .pullBatch:
            let more = try bool()
            return .pullBatch(PullBatch(more: more, changeset: try changeset()))
        case .notify:
            return .notify(latestSequence: try uvarint())
        case .ping:
            return .ping(nonce: try uvarint())
        case .pong:
            return .pong(nonce: try uvarint())
        case .viewRequest:
            let requestID = try uvarint()
            let view = try string()
            let parameterCount = try count("parameter")
            var parameters: [ViewParameter] = []
            parameters.reserveCapacity(parameterCount)
            for _ in 0..<parameterCount {
                let name = try string()
                let value = try string()
                parameters.append(ViewParameter(name: name, value: value))
            }
            return .viewRequest(ViewRequest(requestID: requestID, view: view, parameters: parameters))
        case .viewRows:
            let requestID = try uvarint()
            let final = try bool()
            let columnCount = try count("column")
            var columns: [String] = []
            columns.reserveCapacity(columnCount)
            for _ in 0..<columnCount { columns.append(try string()) }
            let rowCount = try count("row")
            // A row of zero columns takes zero bytes: without this, a tiny frame could
            // declare billions of empty rows.
            guard columnCount > 0 || rowCount == 0 else { throw WireError.badFrame("view rows without columns") }
            // Each value takes at least its tag byte, and draws on the element budget.
            try charge(rowCount * columnCount, "value")
            var rows: [[Value]] = []
            rows.reserveCapacity(rowCount)
            for _ in 0..<rowCount {
                var row: [Value] = []
                row.reserveCapacity(columnCount)
                for _ in 0..<columnCount {
                    row.append(try valuePayload(tag: try byte()))
                }
                rows.append(row)
            }
            return .viewRows(ViewRows(requestID: requestID, final: final, columns: columns, rows: rows))
        case .error:
            let code = ErrorCode(rawValue: try uvarint(as: UInt16.self, "error code"))
            let message = try string()
            var clock: HLCTimestamp?
            switch try byte() {
            case 0: clock = nil
            case 1: clock = HLCTimestamp(rawValue: try fixed64())
            default: throw WireError.badFrame("presence byte is neither 0 nor 1")
            }
            var retry: UInt32?
            switch try byte() {
            case 0: retry = nil
            case 1: retry = try uvarint(as: UInt32.self, "retry after")
            default: throw WireError.badFrame("presence byte is neither 0 nor 1")
            }
            return .error(ErrorMessage(code: code, message: message, serverClock: clock, retryAfterMilliseconds: retry))
        }
    }
}
