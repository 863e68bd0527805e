import Foundation
import Retail
import SQLite
import SyncEngine

/// `--request-id KEY`: a create command run again with the same key creates nothing new and
/// prints what the first run created (exit 0), so a script may retry a command that timed out,
/// or whose process died, without doubling a sale.
///
/// Keys live in the replica, in `local_requests`, a table of this file only (never replicated:
/// a key means something to the scripts of one terminal). What a keyed command creates and the
/// key's row commit in ONE transaction: for the duration of the command, temporary triggers on
/// the replica's connection copy each row the command inserts into `local_requests`, inside the
/// domain operation's own transaction. So a crash leaves either both or neither, and a second
/// process racing with the same key fails its insert on the key's primary key, which rolls its
/// rows back; it then prints the first run's result.
///
/// A key names one command with one set of options: reusing it for something else is refused.
///
/// The triggers are created through `Replica.write`, on the connection that writes (temporary
/// objects belong to one connection). Seam: should the engine ever write through more than one
/// connection, `once` notices the key missing after the command and records it in a second
/// transaction (not atomic with the rows); the lasting shape is a hook inside the domain's own
/// write (Retail taking a request key).
struct RequestLedger {
    let replica: Replica
    let key: String
    let command: String
    let fingerprint: String

    private static let schema = """
        CREATE TABLE IF NOT EXISTS local_requests (
            request_key TEXT NOT NULL,
            row_table TEXT NOT NULL,
            command TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            row_id TEXT NOT NULL,
            PRIMARY KEY (request_key, row_table)
        ) WITHOUT ROWID
        """

    /// The ledger of `arguments`' `--request-id` (nil without one) for `command`.
    init?(_ arguments: Arguments, command: String, replica: Replica) throws {
        guard let key = arguments.optional("request-id") else { return nil }
        guard !key.isEmpty, key.utf8.count <= 200 else { throw UsageError(message: "--request-id is 1 to 200 bytes of text") }
        self.replica = replica
        self.key = key
        self.command = command
        self.fingerprint = RequestLedger.fingerprint(command: command, arguments: arguments)
        try replica.write { tx in try tx.database.execute(RequestLedger.schema) }
    }

    /// A stable digest of the command and its options (FNV-1a, 64 bits), without the key and
    /// the output format: the same request asked again.
    static func fingerprint(command: String, arguments: Arguments) -> String {
        var text = command
        for (name, value) in arguments.options.sorted(by: { $0.key < $1.key }) where name != "request-id" && name != "format" {
            text += "\u{0}\(name)=\(value)"
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The rows (table → id) an earlier run with this key created; nil if none did.
    func recorded() throws -> [String: String]? {
        let rows = try replica.read { database in
            try database.fetchAll("SELECT row_table, command, fingerprint, row_id FROM local_requests WHERE request_key = ?", [.text(key)])
        }
        guard !rows.isEmpty else { return nil }
        var created: [String: String] = [:]
        for row in rows {
            guard row[1].textValue == command, row[2].textValue == fingerprint else {
                throw CommandError("--request-id \(key) was used for another command or other options (`\(row[1].textValue ?? "?")`); "
                                   + "give each request its own key", kind: .rejected)
            }
            created[row[0].textValue ?? ""] = row[3].textValue ?? ""
        }
        return created
    }

    /// Runs `create` (which inserts rows into `tables` and returns their ids by table) once per
    /// key, and returns the ids: the new ones, or those of the run that came first.
    func once(tables: [TableSchema], _ create: () throws -> [String: String]) throws -> [String: String] {
        if let earlier = try recorded() { return earlier }
        try arm(tables)
        let created: [String: String]
        do {
            created = try create()
        } catch {
            try? disarm()
            // Another process with the same key committed first: our rows were rolled back.
            if let earlier = try? recorded() { return earlier }
            throw error
        }
        try disarm()
        if try recorded() == nil {
            // The triggers did not fire on the connection that wrote (see the seam above).
            try replica.write { tx in
                for (table, id) in created.sorted(by: { $0.key < $1.key }) {
                    try tx.database.run("INSERT OR IGNORE INTO local_requests (request_key, row_table, command, fingerprint, row_id) VALUES (?, ?, ?, ?, ?)",
                                        [.text(key), .text(table), .text(command), .text(fingerprint), .text(id)])
                }
            }
        }
        return created
    }

    /// Temporary triggers (this connection only, gone with it) that record each row inserted
    /// into `tables` under the current key, in the inserting transaction.
    private func arm(_ tables: [TableSchema]) throws {
        try replica.write { tx in
            let database = tx.database
            try database.execute("CREATE TEMP TABLE IF NOT EXISTS current_request (request_key TEXT, command TEXT, fingerprint TEXT)")
            try database.run("DELETE FROM temp.current_request")
            try database.run("INSERT INTO temp.current_request VALUES (?, ?, ?)", [.text(key), .text(command), .text(fingerprint)])
            for table in tables {
                // Table and column names come from the schema, never from input.
                let name = table.name.rawValue
                try database.execute("""
                    CREATE TEMP TRIGGER IF NOT EXISTS "record_request_\(name)" AFTER INSERT ON main."\(name)"
                    BEGIN
                        INSERT INTO local_requests (request_key, row_table, command, fingerprint, row_id)
                        SELECT request_key, '\(name)', command, fingerprint, NEW."\(table.primaryKey.rawValue)" FROM current_request;
                    END
                    """)
            }
        }
    }

    private func disarm() throws {
        try replica.write { tx in try tx.database.run("DELETE FROM temp.current_request") }
    }
}
