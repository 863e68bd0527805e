import Retail
import XCTest

/// Grades, follow-up windows, funnel steps, phone normalisation and exact money.
final class LeadPolicyTests: XCTestCase {
    func testGradesAndFollowUpWindows() {
        XCTAssertEqual(LeadGrade(score: 100), .a)
        XCTAssertEqual(LeadGrade(score: 85), .a)
        XCTAssertEqual(LeadGrade(score: 84), .b)
        XCTAssertEqual(LeadGrade(score: 60), .b)
        XCTAssertEqual(LeadGrade(score: 59), .c)
        XCTAssertEqual(LeadGrade(score: 0), .c)
        XCTAssertEqual(LeadGrade(score: nil), .c)
        let hour: Int64 = 3_600_000
        XCTAssertEqual(LeadGrade.a.due(createdMs: 1_000, lastTouchMs: nil), 1_000 + 48 * hour)
        XCTAssertEqual(LeadGrade.b.due(createdMs: 1_000, lastTouchMs: 5_000), 5_000 + 72 * hour)
        XCTAssertEqual(LeadGrade.c.due(createdMs: 1_000, lastTouchMs: nil), 1_000 + 7 * 24 * hour)
    }

    func testFunnelStepsGoOneStageOnOrToLost() {
        let order: [FunnelStage] = [.reached, .needsConfirmed, .demo, .negotiation, .won]
        XCTAssertTrue(FunnelStage.isStep(from: nil, to: .reached))
        XCTAssertFalse(FunnelStage.isStep(from: nil, to: .demo))
        for (index, stage) in order.enumerated() {
            for (other, target) in order.enumerated() {
                XCTAssertEqual(FunnelStage.isStep(from: stage, to: target), other == index || other == index + 1, "\(stage) → \(target)")
            }
            XCTAssertEqual(FunnelStage.isStep(from: stage, to: .lost), stage != .won, "\(stage) → lost")
        }
        XCTAssertFalse(FunnelStage.isStep(from: .lost, to: .won))
        XCTAssertFalse(FunnelStage.isStep(from: .lost, to: .reached))
        XCTAssertEqual(FunnelStage(name: "needs_confirmed"), .needsConfirmed)
        XCTAssertEqual(FunnelStage(name: "Needs-Confirmed"), .needsConfirmed)
        XCTAssertNil(FunnelStage(name: "closed"))
        XCTAssertLessThan(FunnelStage.lost, FunnelStage.won, "a concurrent won and lost settle on won")
    }

    func testPhonesNormaliseFormattingAwayAndRefuseGarbage() throws {
        XCTAssertEqual(try PhoneNumber.normalize("+86 138-0013-8000"), "+8613800138000")
        XCTAssertEqual(try PhoneNumber.normalize("0086 (138) 0013.8000"), "+8613800138000")
        XCTAssertEqual(try PhoneNumber.normalize(" 138 0013 8000 "), "13800138000")
        for bad in ["", "12345", "+86 138 0013 8000 1234", "138-0013-800O", "1+3800138000", "call-me"] {
            XCTAssertThrowsError(try PhoneNumber.normalize(bad), bad) { error in
                XCTAssertFalse("\(error)".contains(bad) && !bad.isEmpty, "the message must not repeat the phone")
            }
        }
    }

    func testAmountsParseExactlyAsIntegerCents() throws {
        XCTAssertEqual(try Money.cents(parsing: "12.34"), 1234)
        XCTAssertEqual(try Money.cents(parsing: "12.3"), 1230)
        XCTAssertEqual(try Money.cents(parsing: "12"), 1200)
        XCTAssertEqual(try Money.cents(parsing: "0.07"), 7)
        XCTAssertEqual(try Money.cents(parsing: "0"), 0)
        XCTAssertEqual(try Money.cents(parsing: "999999999999999.99"), 99_999_999_999_999_999)
        // 0.1 + 0.2 in binary floating point is not 0.3; here every cent is exact.
        XCTAssertEqual(try Money.cents(parsing: "0.10") + Money.cents(parsing: "0.20"), try Money.cents(parsing: "0.30"))
        for bad in ["", "-1", "1.234", "1.", ".5", "1e3", "1,000", "12.3a", "+5", "1 000", "١٢", "9999999999999999"] {
            XCTAssertThrowsError(try Money.cents(parsing: bad), bad)
        }
        XCTAssertEqual(RetailViews.decimal(cents: 1234), "12.34")
    }
}
