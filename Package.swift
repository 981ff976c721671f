// swift-tools-version:6.2
import PackageDescription

/// Settings every Swift target shares: strict about existentials and imports, warnings kept at zero.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Tern",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tern", targets: ["tern"]),
        .library(name: "TernPostgres", targets: ["TernPostgres"]),
        .library(name: "TernCrypto", targets: ["TernCrypto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries: C headers are wrapped by a shim and imported `internal`, so no C type leaks into public API.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // CRC32C with the SSE4.2 instruction where the CPU has it; OpenSSL has no CRC32C.
        .target(name: "CCRC32C", cSettings: [.unsafeFlags(["-O3"])]),
        // SHA-256 on the SHA extensions with CRC32C computed in the same loop, for sealing; TernCrypto falls back to OpenSSL without SHA-NI.
        .target(name: "CSHA256CRC32C", cSettings: [.unsafeFlags(["-O3"])]),
        // Linux calls Swift cannot make itself (prctl is variadic), for the node agent.
        .target(name: "CTernSystem"),

        .target(
            name: "TernPostgres",
            dependencies: ["CLibPQ"],
            swiftSettings: strictSettings
        ),
        .target(name: "TernCrypto", dependencies: ["COpenSSL", "CCRC32C", "CSHA256CRC32C"], swiftSettings: strictSettings),
        .target(name: "TernModel", dependencies: ["TernCrypto", .product(name: "Yams", package: "Yams")], swiftSettings: strictSettings),
        // Sealing and verifying checkpoints: completeness, the parallel hashing engine, manifests.
        .target(name: "TernCheckpoints", dependencies: ["TernCrypto", "TernModel", "TernStorage"], swiftSettings: strictSettings),
        // Object stores (file, S3, GCS, Azure Blob) over Tern's own HTTP/1.1 client, signed with TernCrypto.
        .target(name: "TernStorage", dependencies: ["TernCrypto", "COpenSSL"], swiftSettings: strictSettings),
        // Executors: local processes, Slurm, and the no-op executor the scheduler benchmark uses.
        .target(name: "TernExecutors", dependencies: ["TernModel"], swiftSettings: strictSettings),
        // Repositories over PostgreSQL (targets, jobs, attempts, checkpoints, replicas) and the scheduler.
        .target(name: "TernControl", dependencies: ["TernModel", "TernPostgres", "TernCheckpoints", "TernStorage", "TernExecutors"], swiftSettings: strictSettings),
        // `tern agent`: restores, runs, seals and commits checkpoints, heartbeats, on every node.
        .target(name: "TernAgent", dependencies: ["TernControl", "TernExecutors", "TernCheckpoints", "TernStorage", "TernPostgres", "CTernSystem"],
                swiftSettings: strictSettings),
        .executableTarget(
            name: "tern",
            dependencies: [
                "TernPostgres", "TernCrypto", "TernModel", "TernControl", "TernCheckpoints", "TernStorage", "TernExecutors", "TernAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "TernBench",
            dependencies: [
                "TernPostgres", "TernModel", "TernControl", "TernCheckpoints", "TernCrypto", "TernStorage", "TernExecutors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),

        // Starts the throwaway PostgreSQL cluster every database test uses, and stops it by PID at exit.
        .target(name: "TernTestSupport", dependencies: ["TernPostgres", "TernStorage", "TernCrypto"], path: "Tests/TernTestSupport", swiftSettings: strictSettings),
        .testTarget(name: "TernPostgresTests", dependencies: ["TernPostgres", "TernTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "TernCryptoTests", dependencies: ["TernCrypto"], swiftSettings: strictSettings),
        .testTarget(name: "TernModelTests", dependencies: ["TernModel"], swiftSettings: strictSettings),
        .testTarget(name: "TernCheckpointsTests", dependencies: ["TernCheckpoints", "TernCrypto", "TernStorage", "TernTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "TernStorageTests", dependencies: ["TernStorage", "TernCrypto", "TernCheckpoints", "TernPostgres", "TernTestSupport"], resources: [.copy("Fixtures")], swiftSettings: strictSettings),
        .testTarget(name: "TernControlTests", dependencies: ["TernControl", "TernStorage", "TernTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "TernCLITests", dependencies: ["TernPostgres", "TernModel", "TernTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "TernSchedulerTests", dependencies: ["TernControl", "TernExecutors", "TernCheckpoints", "TernStorage", "TernModel", "TernPostgres", "TernTestSupport"],
                    swiftSettings: strictSettings),
    ],
    swiftLanguageModes: [.v6]
)
