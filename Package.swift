// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "StoreSync",
    products: [
        .library(name: "SyncEngine", targets: ["SyncEngine"]),
        .library(name: "Wire", targets: ["Wire"]),
        .executable(name: "storesync", targets: ["storesync"]),
        .executable(name: "storesync-bench", targets: ["storesync-bench"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "Logging"),
        .target(name: "LockBox"),
        .target(name: "SQLite", dependencies: ["CSQLite"]),
        .target(name: "SyncEngine", dependencies: ["SQLite", "LockBox"]),
        .target(name: "Wire", dependencies: ["SyncEngine"]),
        .target(name: "Net", dependencies: ["Wire", "Logging"]),
        .target(name: "Retail", dependencies: ["SyncEngine", "SQLite", "LockBox"]),
        .target(name: "Hub", dependencies: ["SyncEngine", "SQLite", "Wire", "Net", "Logging", "LockBox", "Crypto"]),
        .target(name: "Terminal", dependencies: ["SyncEngine", "SQLite", "Wire", "Net", "Logging", "LockBox"]),
        // Keys, certificates and the chain's private CA, on OpenSSL (no home-made cryptography).
        .target(name: "Crypto", dependencies: ["COpenSSL"]),
        // TLS 1.3 with mutual authentication as a stage over memory BIOs; never owns a socket.
        .target(name: "TLS", dependencies: ["Crypto", "COpenSSL"], exclude: ["CERTIFICATES.md"]),
        // The retail deployment's wiring of a hub: scopes, central rules, views and the relay to HQ.
        .target(name: "RetailHub", dependencies: ["Hub", "Retail", "Terminal", "SyncEngine", "Net", "Wire", "Logging"]),

        .executableTarget(
            name: "storesync",
            dependencies: ["SyncEngine", "Retail", "RetailHub", "Hub", "Terminal", "Net", "Wire", "Logging", "LockBox"],
            path: "Tools/storesync"
        ),

        .executableTarget(
            name: "storesync-bench",
            dependencies: ["SyncEngine", "SQLite", "Wire", "Retail", "RetailHub", "Hub", "Terminal", "Net", "Logging"],
            path: "Tools/storesync-bench"
        ),
        // Child process for the crash-safety test: writes in a loop and reports each commit.
        .executableTarget(
            name: "storesync-crash-writer",
            dependencies: ["SyncEngine"],
            path: "Tools/storesync-crash-writer"
        ),
        // In-memory TLS costs: handshakes per second and bytes per idle session.
        .executableTarget(
            name: "storesync-tls-bench",
            dependencies: ["TLS", "Crypto", "COpenSSL"],
            path: "Tools/storesync-tls-bench"
        ),
        // Fault-injection harness: real storesync processes behind its own proxies (RELIABILITY.md).
        .executableTarget(
            name: "storesync-chaos",
            dependencies: ["SQLite", "LockBox"],
            path: "Tools/storesync-chaos"
        ),
        // libFuzzer target for the Wire decoder; a corpus replay tool in a normal build.
        .executableTarget(
            name: "storesync-wire-fuzz",
            dependencies: ["Wire"],
            path: "Tools/storesync-wire-fuzz",
            exclude: ["corpus"]
        ),

        .testTarget(name: "SQLiteTests", dependencies: ["SQLite"]),
        .testTarget(name: "SyncEngineTests", dependencies: ["SyncEngine", "SQLite", "storesync-crash-writer"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "SyncEngine"]),
        .testTarget(name: "HubTests", dependencies: ["Hub", "Terminal", "Net", "Wire", "SyncEngine", "SQLite", "Logging"]),
        .testTarget(name: "NetTests", dependencies: ["Net", "Wire", "SyncEngine", "Logging"]),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto", "COpenSSL"], exclude: ["check_certificates.py"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "Crypto", "COpenSSL"], exclude: ["python_tls_client.py"]),
        .testTarget(name: "RetailTests", dependencies: ["Retail", "SyncEngine", "SQLite", "RetailHub", "Hub", "Terminal", "Wire", "Net", "Logging"]),
        // Drives the built storesync binary end to end, as users' scripts do.
        .testTarget(name: "CLITests", dependencies: ["storesync", "storesync-chaos", "SQLite", "SyncEngine", "Retail", "RetailHub", "Hub", "Terminal", "Net", "Wire", "Logging"]),
    ]
)

// One place for the language settings of every Swift target.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
