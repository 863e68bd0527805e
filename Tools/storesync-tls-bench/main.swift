import COpenSSL
import Crypto
import Foundation
import Glibc
import Synchronization
import TLS

/// storesync-tls-bench: the TLS stage's costs on this machine, in memory (no sockets), so the
/// figures are OpenSSL's and ours, not the kernel's. Run in release mode:
/// `swift run -c release storesync-tls-bench [--handshakes N] [--idle N] [--traffic BYTES] [--breakdown N]`.
///
/// - handshakes: full TLS 1.3 mutual handshakes (P-256 certificates, no resumption) between
///   a client and a server engine on one thread. Prints pairs per second (both sides' work on
///   one core) and the server side's own rate (its calls timed alone), which is what bounds a
///   hub's reconnect storm.
/// - idle: N server engines kept after a handshake and `--traffic` bytes each way, clients
///   freed; OpenSSL's live bytes (counted through CRYPTO_set_mem_functions) divided by N is what
///   one idle session costs in OpenSSL; the RSS growth per engine is printed beside it.
let usage = "usage: storesync-tls-bench [--handshakes N] [--idle N] [--traffic BYTES] [--breakdown N]"

struct Options {
    var handshakes = 2000
    var idle = 1000
    var traffic = 64 * 1024
    /// Rounds of each piece of the handshake timed alone (0: skip).
    var breakdown = 0
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let argument = arguments.popFirst() {
        guard let value = arguments.popFirst().flatMap(Int.init), value >= 0 else {
            FileHandle.standardError.write(Data("\(usage)\n".utf8))
            exit(64)
        }
        switch argument {
        case "--handshakes": options.handshakes = value
        case "--idle": options.idle = value
        case "--traffic": options.traffic = value
        case "--breakdown": options.breakdown = value
        default:
            FileHandle.standardError.write(Data("\(usage)\n".utf8))
            exit(64)
        }
    }
    return options
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// CPU time of this thread: on a machine shared with other work, wall time overstates cost.
func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

// OpenSSL's allocations go through these counting wrappers (installed before OpenSSL allocates
// anything), so the live bytes it holds are known exactly. Each block carries its size in a
// 16-byte header (16 keeps the caller's alignment).
let openSSLLiveBytes = Atomic<Int>(0)
let headerBytes = 16

func countingMalloc(_ size: Int, _ file: UnsafePointer<CChar>?, _ line: Int32) -> UnsafeMutableRawPointer? {
    guard let block = malloc(size + headerBytes) else { return nil }
    block.storeBytes(of: size, as: Int.self)
    openSSLLiveBytes.wrappingAdd(size, ordering: .relaxed)
    return block + headerBytes
}

func countingRealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int, _ file: UnsafePointer<CChar>?, _ line: Int32) -> UnsafeMutableRawPointer? {
    guard let pointer else { return countingMalloc(size, file, line) }
    let block = pointer - headerBytes
    let old = block.load(as: Int.self)
    guard let grown = realloc(block, size + headerBytes) else { return nil }
    grown.storeBytes(of: size, as: Int.self)
    openSSLLiveBytes.wrappingAdd(size - old, ordering: .relaxed)
    return grown + headerBytes
}

func countingFree(_ pointer: UnsafeMutableRawPointer?, _ file: UnsafePointer<CChar>?, _ line: Int32) {
    guard let pointer else { return }
    let block = pointer - headerBytes
    openSSLLiveBytes.wrappingSubtract(block.load(as: Int.self), ordering: .relaxed)
    free(block)
}

/// Resident set size from /proc/self/statm (pages × page size): everything, Swift's included.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs one handshake to completion; returns the seconds spent inside the server's calls.
func handshake(_ client: TLSEngine, _ server: TLSEngine) throws -> Double {
    var serverSeconds = 0.0
    _ = try client.handshake()
    for _ in 0..<16 {
        let toServer = client.takeOutbound()
        if !toServer.isEmpty {
            let start = threadCPUSeconds()
            try server.receive(toServer)
            _ = try server.handshake()
            serverSeconds += threadCPUSeconds() - start
        }
        let toClient = server.takeOutbound()
        if !toClient.isEmpty {
            try client.receive(toClient)
            _ = try client.handshake()
        }
        if client.isHandshakeComplete && server.isHandshakeComplete && client.outboundByteCount == 0 && server.outboundByteCount == 0 {
            return serverSeconds
        }
    }
    throw BenchFailure(description: "handshake did not complete")
}

/// Sends `count` bytes from `from` to `to` and reads them all.
func transfer(_ count: Int, from: TLSEngine, to: TLSEngine) throws {
    let payload = [UInt8](repeating: 0x5a, count: count)
    var offset = 0
    var received = 0
    while offset < count || received < count {
        if offset < count, case .wrote(let n) = try from.write(Array(payload[offset...])) { offset += n }
        try to.receive(from.takeOutbound())
        readLoop: while true {
            switch try to.read() {
            case .plaintext(let bytes): received += bytes.count
            default: break readLoop
            }
        }
    }
}

func run(_ options: Options) throws {
    let handshakes = options.handshakes
    let idle = options.idle
    let traffic = options.traffic
    let now = Date()
    let ca = try CertificateAuthority.createRoot(
        commonName: "Bench Root", key: try PrivateKey.generateP256(),
        notBefore: now.addingTimeInterval(-3600), notAfter: now.addingTimeInterval(86_400))
    func issue(_ role: DeviceRole, _ scope: DeviceScope) throws -> (Certificate, PrivateKey) {
        let key = try PrivateKey.generateP256()
        let cert = try ca.issue(
            request: try CertificateRequest(key: key, commonName: "bench"), name: "bench", role: role, scope: scope,
            replicaID: try SecureRandom.bytes(16), notBefore: now.addingTimeInterval(-60), notAfter: now.addingTimeInterval(86_400))
        return (cert, key)
    }
    let (hubCert, hubKey) = try issue(.hub, .region("east"))
    let (terminalCert, terminalKey) = try issue(.terminal, .store("S01"))
    let serverContext = try TLSContext(
        side: .server, certificate: hubCert, privateKey: hubKey, chainCA: ca.certificate,
        isRevoked: { _ in false })
    let clientContext = try TLSContext(side: .client, certificate: terminalCert, privateKey: terminalKey, chainCA: ca.certificate)

    print("OpenSSL \(String(cString: OpenSSL_version(0)))")
    if options.breakdown > 0 {
        // Where a server's handshake time goes, piece by piece (thread CPU time per operation).
        let rounds = options.breakdown
        func time(_ label: String, _ body: () throws -> Void) rethrows {
            let start = threadCPUSeconds()
            for _ in 0..<rounds { try body() }
            print(String(format: "breakdown: %@: %.1f µs", label, (threadCPUSeconds() - start) * 1e6 / Double(rounds)))
        }
        let der = try terminalCert.der()
        let parsed = try Certificate(der: der)
        try time("parse a peer certificate (d2i_X509 + its public key)") {
            _ = X509_get0_pubkey(try Certificate(der: der).pointer)
        }
        try time("verify it against the CA (X509_verify_cert)") { try parsed.verify(trusting: [ca.certificate]) }
        try time("read its StoreSync identity") { _ = try parsed.identity() }
        try time("make and free a server engine (SSL_new/SSL_free)") { _ = try TLSEngine(context: serverContext) }
        try time("generate a P-256 key") { _ = try PrivateKey.generateP256() }
    }

    if handshakes > 0 {
        // Warm up (first use loads providers and tables).
        for _ in 0..<20 { _ = try handshake(try TLSEngine(context: clientContext), try TLSEngine(context: serverContext)) }
        var serverSeconds = 0.0
        let start = monotonicSeconds()
        let startCPU = threadCPUSeconds()
        for _ in 0..<handshakes {
            // Engines are made and freed inside the timed loop: SSL_new/SSL_free are part of a connection's cost.
            let server = try TLSEngine(context: serverContext)
            serverSeconds += try handshake(try TLSEngine(context: clientContext), server)
        }
        let elapsed = monotonicSeconds() - start
        let cpu = threadCPUSeconds() - startCPU
        print(String(format: "handshakes: %d full mutual TLS 1.3 handshakes, both sides on one thread: %.3f s wall, %.3f s CPU: %.0f pairs per CPU-second (%.0f per wall second)",
                     handshakes, elapsed, cpu, Double(handshakes) / cpu, Double(handshakes) / elapsed))
        print(String(format: "handshakes: server side alone (its receive+handshake calls, thread CPU time): %.3f ms each, %.0f per CPU-second per core",
                     serverSeconds * 1000 / Double(handshakes), Double(handshakes) / serverSeconds))
    }

    if idle > 0 {
        let before = openSSLLiveBytes.load(ordering: .relaxed)
        let residentBefore = residentBytes()
        var servers: [TLSEngine] = []
        servers.reserveCapacity(idle)
        for _ in 0..<idle {
            let client = try TLSEngine(context: clientContext)
            let server = try TLSEngine(context: serverContext)
            _ = try handshake(client, server)
            try transfer(traffic, from: client, to: server)
            try transfer(traffic, from: server, to: client)
            servers.append(server)
        }
        let after = openSSLLiveBytes.load(ordering: .relaxed)
        let residentAfter = residentBytes()
        let perEngine = Double(after - before) / Double(idle)
        let residentPerEngine = Double(residentAfter - residentBefore) / Double(idle)
        print(String(format: "idle: %d server engines after %d bytes each way: OpenSSL holds %.0f bytes (%.1f KiB) per idle engine; process RSS grew %.1f KiB per engine (includes Swift objects and allocator slack)",
                     idle, traffic, perEngine, perEngine / 1024, residentPerEngine / 1024))
        withExtendedLifetime(servers) {}
    }
}

guard CRYPTO_set_mem_functions(countingMalloc, countingRealloc, countingFree) == 1 else {
    FileHandle.standardError.write(Data("storesync-tls-bench: cannot install OpenSSL allocation counters\n".utf8))
    exit(1)
}
do {
    try run(parseOptions())
} catch {
    FileHandle.standardError.write(Data("storesync-tls-bench: \(error)\n".utf8))
    exit(1)
}
