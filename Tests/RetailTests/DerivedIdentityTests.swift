import Foundation
@testable import Retail
import SyncEngine
import XCTest

/// Derived keys must stay the same across hubs, platforms and versions of StoreSync: a changed
/// key would make an upgraded hub issue again what an older one issued. These vectors pin them.
final class DerivedIdentityTests: XCTestCase {
    func testSHA256MatchesTheStandardVectors() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        XCTAssertEqual(hex(SHA256.hash(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(SHA256.hash([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(SHA256.hash(Array(repeating: UInt8(ascii: "a"), count: 1_000))),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testDerivedKeysHashLengthPrefixedFields() {
        XCTAssertEqual(DerivedKey.make("P-", ["promotion", "S2", "S1"]), "P-26df9ada3d20eeb3f971e34d09a69c23")
        XCTAssertNotEqual(DerivedKey.make("P-", ["ab", "c"]), DerivedKey.make("P-", ["a", "bc"]), "fields never run together")
    }

    func testRuleOriginsSortBelowRealReplicasAndStagesInFunnelOrder() {
        let origins = FunnelStage.allCases.sorted().map(RulesOrigin.stage)
        XCTAssertEqual(origins, origins.sorted())
        XCTAssertTrue(origins.allSatisfy { RulesOrigin.isRules($0) && $0 > .none })
        XCTAssertFalse(RulesOrigin.isRules(ReplicaID(high: 1, low: 0)))
        XCTAssertLessThan(RulesOrigin.promotions, ReplicaID(high: 1, low: 0), "a real write at the same clock reading wins")
    }
}
