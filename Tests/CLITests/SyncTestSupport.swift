import Foundation
import Hub
import Logging
import Net
import Retail
import RetailHub
import Synchronization
import SyncEngine
import Terminal
import Wire

/// A wall clock a test moves by hand, so that which of two writes is later is decided, not raced.
final class ManualClock: Sendable {
    private let milliseconds: Mutex<UInt64>

    init() {
        milliseconds = Mutex(systemWallClock())
    }

    var wallClock: WallClock { { [self] in self.milliseconds.withLock { $0 } } }

    var now: Int64 { Int64(bitPattern: milliseconds.withLock { $0 }) }

    func advance(by step: UInt64 = 1_000) {
        milliseconds.withLock { $0 += step }
    }
}

/// A retail hub served in this process as `storesync hub` serves one (`RetailHubNode`).
func startRetailHub(_ replica: Replica, scope: NodeScope = .all) throws -> RetailHubNode {
    var options = RetailHubNode.Options(configuration: HubConfiguration(listenAddress: SocketAddress(host: "127.0.0.1", port: 0)))
    options.watchesOtherWriters = false
    let node = try RetailHubNode(replica: replica, scope: scope, options: options, logger: Logger.discarding)
    node.start()
    return node
}

/// Stands between clients and a hub, message by message, and fails sessions on purpose.
final class MeddlingProxy: Sendable {
    enum Mode: Sendable {
        /// Answers every HELLO with this ERROR and closes (no hub behind it).
        case refuseHello(ErrorMessage)
        /// Forwards the handshake, answers the client's first PUSH or PULL with this ERROR and closes.
        case failAfterHandshake(ErrorMessage)
        /// Forwards everything, and cuts the first session right after it forwarded a PULL_BATCH
        /// to the client (later sessions pass untouched).
        case cutAfterFirstPullBatch
    }

    private final class Counts: Sendable {
        let accepted = Mutex(0)
        let cut = Mutex(false)
    }

    private let listener: Listener
    private let counts = Counts()

    init(mode: Mode, hub: SocketAddress?) throws {
        listener = try Listener(address: SocketAddress(host: "127.0.0.1", port: 0), limits: ConnectionLimits(), logger: Logger.discarding)
        let counts = self.counts
        listener.start { client in
            counts.accepted.withLock { $0 += 1 }
            if case .refuseHello(let error) = mode {
                client.start(onMessage: { message in
                    if case .hello = message {
                        client.send(.error(error))
                        client.close(flushing: true)
                    }
                }, onClose: { _ in })
                return
            }
            guard let hub, let upstream = try? Dialer.connect(to: hub, timeout: .seconds(10), limits: ConnectionLimits(), logger: Logger.discarding) else {
                client.close(flushing: false)
                return
            }
            upstream.start(onMessage: { message in
                client.send(message)
                if case .pullBatch = message, case .cutAfterFirstPullBatch = mode,
                   counts.cut.withLock({ done in defer { done = true }; return !done }) {
                    client.close(flushing: true)
                    upstream.close(flushing: false)
                }
            }, onClose: { _ in client.close(flushing: true) })
            client.start(onMessage: { message in
                switch (mode, message) {
                case (.failAfterHandshake(let error), .push), (.failAfterHandshake(let error), .pull):
                    client.send(.error(error))
                    client.close(flushing: true)
                    upstream.close(flushing: false)
                default:
                    upstream.send(message)
                }
            }, onClose: { _ in upstream.close(flushing: true) })
        }
    }

    var address: SocketAddress { listener.boundAddress }

    /// Connections accepted so far (each a session the client started).
    var connections: Int { counts.accepted.withLock { $0 } }

    var didCut: Bool { counts.cut.withLock { $0 } }

    func close() { listener.close() }
}
