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

    /// Review keys hash versions as text; the rules build that text themselves, and it must be
    /// `Version.description` to the byte, or upgraded hubs would log reviews again.
    func testVersionKeyTextIsItsDescription() {
        var random = SplitMix64(seed: 0x5EED)
        var versions = [Version.zero, Version(hlc: HLCTimestamp(rawValue: .max), origin: ReplicaID(high: .max, low: .max)),
                        Version(hlc: HLCTimestamp(milliseconds: 1_767_225_600_000, counter: 7), origin: RulesOrigin.reviews)]
        for _ in 0..<1_000 {
            versions.append(Version(hlc: HLCTimestamp(rawValue: random.next() >> UInt64.random(in: 0...63, using: &random)),
                                    origin: ReplicaID(high: random.next() >> UInt64.random(in: 0...63, using: &random), low: random.next())))
        }
        for version in versions { XCTAssertEqual(version.keyText, version.description) }
    }

    /// The funnel rule reads stored stage names without Foundation for ASCII text: the same
    /// stage as `FunnelStage(name:)` for every text.
    func testStageNamesReadAsFunnelStageReadsThem() {
        var random = SplitMix64(seed: 0x57A6E)
        var names = FunnelStage.allCases.map(\.rawValue) + ["NEEDS_CONFIRMED", "Needs-Confirmed", "needs_confirmed", "WON", "wOn",
                                                              "", "won ", "Demo\u{301}", "DEMO", "neg0tiation", "\u{130}", "ſ", "lost\u{0}"]
        let alphabet = Array("abcdeghilmnorstwyzABDELNORSTW-_ 0\u{212A}é".unicodeScalars)
        for _ in 0..<2_000 {
            var text = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...16, using: &random) { text.append(alphabet[Int.random(in: 0..<alphabet.count, using: &random)]) }
            names.append(String(text))
            // Near misses of real names: one letter's case flipped, `-` and `_` swapped.
            let stage = FunnelStage.allCases[Int.random(in: 0..<FunnelStage.allCases.count, using: &random)].rawValue
            names.append(String(stage.map { Bool.random(using: &random) ? Character($0.uppercased()) : $0 == "-" ? "_" : $0 }))
        }
        for name in names { XCTAssertEqual(FunnelRule.stage(named: name), FunnelStage(name: name), "\(name.unicodeScalars.map(\.value))") }
    }
}
