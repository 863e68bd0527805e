import Foundation
import SQLite
import XCTest
@testable import SyncEngine

/// Backups, restores, clones and a clean stop, at the engine level (coord.md "Restores").
final class BackupTests: XCTestCase {
    private let leadName = TestSchema.column("name")
    private let store = TestSchema.column("store")
    private var directory: URL!

    override func setUpWithError() throws { directory = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    private func writeRows(_ replica: Replica, from first: Int, count: Int) throws {
        for index in first..<(first + count) {
            try replica.write { tx in
                try tx.insert(into: TestSchema.leads, primaryKey: "lead-\(index)", [leadName: .text("n\(index)")])
                try tx.insert(into: TestSchema.visits, primaryKey: "visit-\(index)", [store: .text("S1")])
            }
        }
    }

    func testARestoredBackupHasANewIdentitySameRowsAndPushesItsOldLocalRowsAgain() throws {
        let original = try Replica(path: path("terminal.sqlite"), schema: TestSchema.tables)
        try writeRows(original, from: 0, count: 5)
        // A row from a peer: not a local write, before or after the restore.
        let peer = try openMemoryReplica()
        try peer.write { tx in try tx.insert(into: TestSchema.leads, primaryKey: "lead-peer", [leadName: .text("p")]) }
        _ = try original.apply(try peer.changes(since: 0))
        try original.acknowledge(peer: peer.id, upTo: original.latestSequence)
        try original.setSetting("lease:\(peer.id)", .blob(Array(repeating: 7, count: 16)))

        try original.backup(to: path("backup.sqlite"))
        XCTAssertEqual(try original.setting("restored_from"), nil, "the original is not marked")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("backup.sqlite-wal")))

        let restored = try Replica(path: path("backup.sqlite"), schema: TestSchema.tables)
        XCTAssertNotEqual(restored.id, original.id)
        XCTAssertEqual(restored.previousIDs, [original.id])
        XCTAssertEqual(try restored.setting("previous_ids"), .text(original.id.description))
        XCTAssertEqual(try restored.setting("restored_from"), nil)
        XCTAssertEqual(try restored.setting("lease:\(peer.id)"), nil, "a lease issued to the old identity is forgotten")
        XCTAssertEqual(try restored.cursor(for: peer.id).acknowledged, 0, "no peer holds anything of the new identity")
        XCTAssertEqual(try restored.canonicalDump(includeVersions: true), try original.canonicalDump(includeVersions: true))

        let local = try restored.changes(since: 0, onlyLocalWrites: true)
        XCTAssertEqual(Set(local.tables.flatMap { $0.rows.map(\.primaryKey) }),
                       Set((0..<5).flatMap { ["lead-\($0)", "visit-\($0)"] }), "the old identity's rows are local writes")
        // The next open keeps the new identity.
        let again = try Replica(path: path("backup.sqlite"), schema: TestSchema.tables)
        XCTAssertEqual(again.id, restored.id)
        XCTAssertThrowsError(try original.backup(to: path("backup.sqlite"))) { error in
            XCTAssertEqual(error as? ReplicaFileError, .destinationExists(path: self.path("backup.sqlite")))
        }
    }

    func testABackupWhileAnotherConnectionWritesIsAConsistentSnapshot() throws {
        let file = path("hub.sqlite")
        let replica = try Replica(path: file, schema: TestSchema.tables)
        try writeRows(replica, from: 0, count: 50)
        let writer = try Replica(path: file, schema: TestSchema.tables)
        let started = DispatchSemaphore(value: 0)
        let stop = Stop()
        let thread = Thread {
            var index = 1_000
            started.signal()
            while !stop.isSet {
                try? writer.write { tx in
                    try tx.insert(into: TestSchema.leads, primaryKey: "lead-\(index)", [TestSchema.column("name"): .text("w")])
                    try tx.insert(into: TestSchema.visits, primaryKey: "visit-\(index)", [TestSchema.column("store"): .text("S2")])
                }
                index += 1
            }
        }
        thread.start()
        started.wait()
        for round in 0..<3 {
            try replica.backup(to: path("backup-\(round).sqlite"))
        }
        stop.set()
        for round in 0..<3 {
            let copy = try Replica(path: path("backup-\(round).sqlite"), schema: TestSchema.tables)
            XCTAssertEqual(try copy.read { try $0.integrityCheck() }, "ok")
            let (leads, visits) = try copy.read { db in
                (try db.fetchScalar("SELECT count(*) FROM leads")?.integerValue ?? -1,
                 try db.fetchScalar("SELECT count(*) FROM visits")?.integerValue ?? -2)
            }
            XCTAssertGreaterThanOrEqual(leads, 50, "every row committed before the backup is in it")
            XCTAssertEqual(leads, visits, "no transaction is in the copy by half")
            XCTAssertEqual(copy.latestSequence, UInt64(leads + visits), "the change log matches the rows")
        }
    }

    func testReidentifyGivesANewIdentityAndRefusesWhatIsNotAReplica() throws {
        let file = path("clone.sqlite")
        var replica: Replica? = try Replica(path: file, schema: TestSchema.tables)
        try writeRows(try XCTUnwrap(replica), from: 0, count: 3)
        let first = try XCTUnwrap(replica?.id)
        replica = nil
        let change = try Replica.reidentify(path: file)
        XCTAssertEqual(change.previous, first)
        let second = try Replica.reidentify(path: file)
        XCTAssertEqual(second.previous, change.current)
        let reopened = try Replica(path: file, schema: TestSchema.tables)
        XCTAssertEqual(reopened.id, second.current)
        XCTAssertEqual(reopened.previousIDs, [first, change.current])
        XCTAssertEqual(try reopened.changes(since: 0, onlyLocalWrites: true).rowCount, 6)

        XCTAssertThrowsError(try Replica.reidentify(path: path("missing.sqlite"))) { error in
            XCTAssertTrue((error as? SyncError)?.isNotAReplica ?? false, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("missing.sqlite")), "nothing was created")
        let plain = try Database(path: path("plain.sqlite"))
        try plain.execute("CREATE TABLE t (x)")
        XCTAssertThrowsError(try Replica.reidentify(path: path("plain.sqlite"))) { error in
            XCTAssertTrue((error as? SyncError)?.isNotAReplica ?? false, "\(error)")
        }
    }

    /// A checkpoint, and a clean close, merge the WAL: the main file copied alone (without
    /// `-wal`) holds every row, even while the replica is still open.
    func testAfterCloseTheMainFileAloneHoldsEveryCommittedRow() throws {
        let file = path("terminal.sqlite")
        let replica = try Replica(path: file, schema: TestSchema.tables)
        try writeRows(replica, from: 0, count: 20)
        let dump = try replica.canonicalDump(includeVersions: true)
        XCTAssertTrue(try replica.checkpoint())
        try FileManager.default.copyItem(atPath: file, toPath: path("open.sqlite"))
        XCTAssertEqual(try Replica(path: path("open.sqlite"), schema: TestSchema.tables).canonicalDump(includeVersions: true), dump)
        try writeRows(replica, from: 20, count: 5)
        let finalDump = try replica.canonicalDump(includeVersions: true)
        XCTAssertTrue(try replica.close())
        XCTAssertThrowsError(try replica.write { _ in }, "a closed replica refuses work")
        XCTAssertTrue(try replica.close(), "closing twice does nothing")

        try FileManager.default.copyItem(atPath: file, toPath: path("cold.sqlite"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("cold.sqlite-wal")))
        let cold = try Replica(path: path("cold.sqlite"), schema: TestSchema.tables)
        XCTAssertEqual(try cold.canonicalDump(includeVersions: true), finalDump)
    }

    func testTheSecondHolderOfAReplicaLockLearnsWhoHoldsIt() throws {
        let file = path("hub.sqlite")
        let lock = try ReplicaLock.acquire(path: file, holder: "storesync hub --db hub.sqlite")
        XCTAssertEqual(ReplicaLock.currentHolder(path: file), ReplicaLock.Holder(pid: getpid(), command: "storesync hub --db hub.sqlite"))
        XCTAssertThrowsError(try ReplicaLock.acquire(path: file, holder: "storesync sync --live")) { error in
            guard case .locked(let lockedPath, let holder)? = error as? ReplicaFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(lockedPath, file)
            XCTAssertEqual(holder, ReplicaLock.Holder(pid: getpid(), command: "storesync hub --db hub.sqlite"))
            XCTAssertTrue((error as? ReplicaFileError)?.isRetryable ?? false)
            XCTAssertTrue("\(error)".contains("process \(getpid()) (storesync hub --db hub.sqlite)"), "\(error)")
        }
        // Another process is told the same.
        let child = try ChildRun.start(try crashWriterExecutable(for: self), ["--try-lock", "--db", file], in: directory, name: "lock")
        let result = child.finish()
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "locked \(getpid()) storesync hub --db hub.sqlite\n")
        // The lock is advisory: a one-shot command still opens and writes the replica.
        let replica = try Replica(path: file, schema: TestSchema.tables)
        try writeRows(replica, from: 0, count: 1)
        lock.release()
        XCTAssertNil(ReplicaLock.currentHolder(path: file))
        let next = try ReplicaLock.acquire(path: file, holder: "storesync sync --live")
        XCTAssertEqual(ReplicaLock.currentHolder(path: file)?.command, "storesync sync --live")
        next.release()
        let free = try ChildRun.start(try crashWriterExecutable(for: self), ["--try-lock", "--db", file], in: directory, name: "free")
        XCTAssertEqual(free.finish().stdout, "acquired\n", "a released lock is free for another process")
    }
}

private final class Stop: @unchecked Sendable {
    // `@unchecked` is true: `flag` is read and written only under `lock`.
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var isSet: Bool { lock.withLock { flag } }
}
