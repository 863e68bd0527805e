import Glibc

/// A host and TCP port, as written in configuration: `HOST:PORT` or `[IPv6]:PORT`.
/// The host may be a name; it is resolved when a listener binds or a dialer connects.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[::1]:PORT` or `:PORT` (every interface).
    public static func parse(_ text: String) throws(NetError) -> SocketAddress {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw NetError(call: "SocketAddress.parse", errno: 0, detail: "missing ']' in \"\(text)\"")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw NetError(call: "SocketAddress.parse", errno: 0, detail: "expected ':PORT' after ']' in \"\(text)\"")
            }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw NetError(call: "SocketAddress.parse", errno: 0, detail: "expected HOST:PORT, got \"\(text)\"")
            }
            host = text[..<colon]
            guard !host.contains(":") else {
                throw NetError(call: "SocketAddress.parse", errno: 0, detail: "an IPv6 host needs brackets: [HOST]:PORT")
            }
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else {
            throw NetError(call: "SocketAddress.parse", errno: 0, detail: "port must be 0...65535 in \"\(text)\"")
        }
        return SocketAddress(host: String(host), port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// A resolved socket address, ready for `bind` or `connect`.
struct ResolvedAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    var family: Int32 { Int32(storage.ss_family) }

    /// Runs `body` with the address as the `sockaddr` pointer the socket calls take.
    func withSockAddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// Reads the local (`getsockname`) or remote (`getpeername`) address of a socket.
    static func of(_ fd: Int32, peer: Bool) throws(NetError) -> ResolvedAddress {
        var address = ResolvedAddress()
        address.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let call = peer ? "getpeername" : "getsockname"
        try systemCall(call) {
            withUnsafeMutablePointer(to: &address.storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    peer ? getpeername(fd, socketAddress, &address.length) : getsockname(fd, socketAddress, &address.length)
                }
            }
        }
        return address
    }

    /// The numeric host and port, or nil for a family other than IPv4 and IPv6.
    var socketAddress: SocketAddress? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafePointer(to: storage) { pointer -> SocketAddress? in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { inet -> SocketAddress? in
                    var raw = inet.pointee.sin_addr
                    guard inet_ntop(AF_INET, &raw, &text, socklen_t(text.count)) != nil else { return nil }
                    return SocketAddress(host: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                                         port: UInt16(bigEndian: inet.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { inet6 -> SocketAddress? in
                    var raw = inet6.pointee.sin6_addr
                    guard inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count)) != nil else { return nil }
                    return SocketAddress(host: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                                         port: UInt16(bigEndian: inet6.pointee.sin6_port))
                }
            default:
                return nil
            }
        }
    }

    /// Resolves `address` to the stream socket addresses it names, in the resolver's order.
    /// An empty host or `*` means every interface (for a listener).
    static func resolve(_ address: SocketAddress, passive: Bool) throws(NetError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let host: String? = (address.host.isEmpty || address.host == "*") ? nil : address.host
        let status: Int32
        if let host {
            status = getaddrinfo(host, String(address.port), &hints, &list)
        } else {
            status = getaddrinfo(nil, String(address.port), &hints, &list)
        }
        guard status == 0 else {
            let code = status == EAI_SYSTEM ? Glibc.errno : 0
            throw NetError(call: "getaddrinfo", errno: code, detail: "\(String(cString: gai_strerror(status))) for \(address)")
        }
        defer { freeaddrinfo(list) }
        var results: [ResolvedAddress] = []
        var cursor = list
        while let entry = cursor {
            if let source = entry.pointee.ai_addr, Int(entry.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
                var resolved = ResolvedAddress()
                resolved.length = entry.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &resolved.storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(source), count: Int(entry.pointee.ai_addrlen)))
                }
                results.append(resolved)
            }
            cursor = entry.pointee.ai_next
        }
        guard !results.isEmpty else {
            throw NetError(call: "getaddrinfo", errno: 0, detail: "no stream address for \(address)")
        }
        return results
    }
}
