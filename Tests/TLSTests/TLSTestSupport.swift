import Crypto
import Foundation
import XCTest
@testable import TLS

/// How the in-memory "network" hands bytes from one engine to the other.
enum Delivery: CaseIterable, CustomStringConvertible {
    /// Everything one side produced, in one piece.
    case whole
    /// Split at random points.
    case randomSplits
    /// One byte at a time (every step in between sees WANT_READ).
    case byteAtATime

    var description: String {
        switch self {
        case .whole: return "whole"
        case .randomSplits: return "random splits"
        case .byteAtATime: return "byte at a time"
        }
    }
}

/// A small deterministic generator, so a failing split pattern can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One side of a test connection: its engine and what it has seen so far.
final class Peer {
    let engine: TLSEngine
    var received: [UInt8] = []
    var error: TLSError?
    var sawCloseNotify = false
    /// How many steps ended in WANT_READ ("need more bytes").
    var needMoreBytes = 0

    init(_ context: TLSContext) throws {
        self.engine = try TLSEngine(context: context)
    }

    /// Drives the handshake, then reads whatever plaintext has arrived. Errors are recorded.
    func step() {
        guard self.error == nil, !self.sawCloseNotify else { return }
        do throws(TLSError) {
            if !self.engine.isHandshakeComplete {
                switch try self.engine.handshake() {
                case .complete: break
                case .needMoreBytes:
                    self.needMoreBytes += 1
                    return
                case .flushOutbound: return
                }
            }
            while true {
                switch try self.engine.read() {
                case .plaintext(let bytes): self.received += bytes
                case .needMoreBytes:
                    self.needMoreBytes += 1
                    return
                case .flushOutbound: return
                case .closed:
                    self.sawCloseNotify = true
                    return
                }
            }
        } catch {
            self.error = error
        }
    }
}

/// Two engines wired to each other in memory.
struct Link {
    let client: Peer
    let server: Peer
    let delivery: Delivery
    var random: SplitMix64

    init(client: TLSContext, server: TLSContext, delivery: Delivery, seed: UInt64 = 0x5EED) throws {
        self.client = try Peer(client)
        self.server = try Peer(server)
        self.delivery = delivery
        self.random = SplitMix64(state: seed)
    }

    /// Moves what `from` has to send into `to`, in pieces as `delivery` says, stepping `to`
    /// after each piece. Returns the number of bytes moved.
    @discardableResult
    mutating func deliver(from: Peer, to: Peer, maxBytes: Int = Int.max) -> Int {
        let bytes = from.engine.takeOutbound(maxBytes: maxBytes)
        var offset = 0
        while offset < bytes.count {
            let size: Int
            switch self.delivery {
            case .whole: size = bytes.count
            case .byteAtATime: size = 1
            case .randomSplits: size = Int.random(in: 1...max(1, min(bytes.count - offset, 700)), using: &self.random)
            }
            let end = min(bytes.count, offset + size)
            if to.error == nil {
                do throws(TLSError) {
                    try to.engine.receive(Array(bytes[offset..<end]))
                } catch {
                    to.error = error
                }
                to.step()
            }
            offset = end
        }
        return bytes.count
    }

    /// Steps both sides and moves bytes both ways until nothing moves.
    mutating func run() {
        self.client.step()
        self.server.step()
        for _ in 0..<100_000 {
            let moved = self.deliver(from: self.client, to: self.server) + self.deliver(from: self.server, to: self.client)
            if moved == 0 { return }
        }
        XCTFail("link did not settle")
    }

    /// Writes all of `bytes` from `peer`, flushing to the other side whenever the engine asks
    /// ("flush and come back") and after every partial write.
    mutating func write(_ bytes: [UInt8], from peer: Peer) throws {
        var offset = 0
        var flushes = 0
        while offset < bytes.count {
            let result = try peer.engine.write(Array(bytes[offset...]))
            switch result {
            case .wrote(let count):
                offset += count
            case .flushOutbound, .needMoreBytes:
                flushes += 1
                XCTAssertLessThan(flushes, 100_000)
            }
            self.run()
        }
    }
}

/// A chain with a hub and a terminal, and the contexts a test needs.
final class TLSFixture {
    let now = Date()
    let ca: CertificateAuthority
    let hubCertificate: Certificate
    let hubKey: PrivateKey
    let terminalCertificate: Certificate
    let terminalKey: PrivateKey

    init() throws {
        self.ca = try TLSFixture.makeCA(name: "StoreSync Test Root", now: self.now)
        (self.hubCertificate, self.hubKey) = try TLSFixture.issue(self.ca, role: .hub, scope: .region("east"), name: "hub east", now: self.now)
        (self.terminalCertificate, self.terminalKey) = try TLSFixture.issue(self.ca, role: .terminal, scope: .store("S01"), name: "till 1", now: self.now)
    }

    static func makeCA(name: String, now: Date) throws -> CertificateAuthority {
        try CertificateAuthority.createRoot(
            commonName: name, key: try PrivateKey.generateP256(),
            notBefore: now.addingTimeInterval(-86_400 * 30), notAfter: now.addingTimeInterval(86_400 * 3650))
    }

    static func issue(
        _ ca: CertificateAuthority, role: DeviceRole, scope: DeviceScope, name: String, now: Date,
        notBefore: TimeInterval = -60, notAfter: TimeInterval = 90 * 86_400
    ) throws -> (Certificate, PrivateKey) {
        let key = try PrivateKey.generateP256()
        let certificate = try ca.issue(
            request: try CertificateRequest(key: key, commonName: name), name: name, role: role, scope: scope,
            replicaID: try SecureRandom.bytes(16),
            notBefore: now.addingTimeInterval(notBefore), notAfter: now.addingTimeInterval(notAfter))
        return (certificate, key)
    }

    func server(
        isRevoked: (@Sendable (CertificateSerial) -> Bool)? = nil, maxOutboundCiphertext: Int = 64 * 1024
    ) throws -> TLSContext {
        try TLSContext(
            side: .server, certificate: self.hubCertificate, privateKey: self.hubKey, chainCA: self.ca.certificate,
            isRevoked: isRevoked, maxOutboundCiphertext: maxOutboundCiphertext)
    }

    func client(maxOutboundCiphertext: Int = 64 * 1024) throws -> TLSContext {
        try TLSContext(
            side: .client, certificate: self.terminalCertificate, privateKey: self.terminalKey, chainCA: self.ca.certificate,
            maxOutboundCiphertext: maxOutboundCiphertext)
    }
}

func patternBytes(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}
