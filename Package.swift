// swift-tools-version: 6.1
import PackageDescription

/// Our own targets treat every warning as an error: the project promises a warning-free build.
let strictSettings: [SwiftSetting] = [
    .unsafeFlags(["-warnings-as-errors"])
]

/// The engine and the server also skip the run-time exclusivity checks in release builds: they cost
/// a few percent of the request path (docs/benchmarks.md), and debug builds, which every test runs,
/// keep them.
let hotPathSettings: [SwiftSetting] =
    strictSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// Debug builds (every test runs one) may switch on the simulator's deliberate bugs in a real node
/// (`INJECT_BUG`); a release build cannot: no setting turns off a production node's durability.
let injectedBugSettings: [SwiftSetting] = [.define("INJECTED_BUGS", .when(configuration: .debug))]

/// `WITHOUT_JEMALLOC=1 swift build --scratch-path …` builds a node on the C library's allocator:
/// libfaketime, which cache-chaos uses to skew a node's clock, cannot run with jemalloc linked
/// (libfaketime #130), nor can AddressSanitizer. The node then reports no allocator figures and
/// bounds memory by its own estimate.
let withJemalloc = Context.environment["WITHOUT_JEMALLOC"] == nil

let package = Package(
    name: "swift-cache",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CacheCore", targets: ["CacheCore"]),
        .library(name: "CacheServer", targets: ["CacheServer"]),
        .library(name: "CacheClient", targets: ["CacheClient"]),
        .executable(name: "cache-node", targets: ["cache-node"]),
        .executable(name: "cache-sim", targets: ["cache-sim"]),
        .executable(name: "cache-chaos", targets: ["cache-chaos"]),
        .executable(name: "cachectl", targets: ["cachectl"]),
        .executable(name: "cache-bench", targets: ["cache-bench"]),
    ],
    // Exact versions: two builds of one commit get the same dependencies. (Package.resolved is not
    // committed: this project's machines resolve through a mirror whose revisions are its own.)
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", exact: "1.4.0"),
        .package(url: "https://github.com/apple/swift-collections.git", exact: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", exact: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", exact: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", exact: "2.37.6"),
    ],
    targets: [
        // The pure core: state machines and codecs. Standard library only, so that the simulator,
        // the fuzzers and the server all compile exactly the same code.
        .target(
            name: "CacheCore",
            swiftSettings: hotPathSettings
        ),
        // Debian's libjemalloc-dev; linking it makes jemalloc the process's allocator.
        .systemLibrary(
            name: "CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]
        ),
        // The driver: sockets, timers, clocks, allocator statistics, logging and metrics.
        .target(
            name: "CacheServer",
            dependencies: [
                "CacheCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ] + (withJemalloc ? ["CJemalloc"] : []),
            swiftSettings: hotPathSettings + injectedBugSettings
        ),
        .executableTarget(
            name: "cache-node",
            dependencies: [
                "CacheServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings + injectedBugSettings
        ),
        // The client library: routing with the nodes' own ring, pooled connections, failover.
        .target(
            name: "CacheClient",
            dependencies: [
                "CacheCore",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cachectl",
            dependencies: [
                "CacheClient",
                "CacheCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cache-bench",
            dependencies: [
                "CacheClient",
                "CacheCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The README's client example, built and run by the tests so that it stays true.
        .executableTarget(
            name: "cache-client-example",
            dependencies: ["CacheClient"],
            swiftSettings: strictSettings
        ),
        // The checkers that read only what clients saw, shared by the simulator and cache-chaos.
        .target(
            name: "HistoryCheckers",
            dependencies: ["CacheCore"],
            path: "Simulation/HistoryCheckers",
            swiftSettings: strictSettings
        ),
        // The deterministic simulator: CacheCore nodes under one seed (`Simulation/`).
        .target(
            name: "Simulator",
            dependencies: ["CacheCore", "HistoryCheckers"],
            path: "Simulation/Simulator",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cache-sim",
            dependencies: [
                "Simulator",
                "CacheCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Simulation/cache-sim",
            swiftSettings: strictSettings
        ),
        // Real processes under faults from a seeded schedule, judged by the same history checkers.
        .executableTarget(
            name: "cache-chaos",
            dependencies: [
                "HistoryCheckers",
                "CacheCore",
                "CacheClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Simulation/cache-chaos",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SimulatorTests",
            dependencies: ["Simulator", "CacheCore", "HistoryCheckers"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CacheCoreTests",
            dependencies: ["CacheCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CacheServerTests",
            dependencies: [
                "CacheServer",
                "CacheCore",
                "CacheClient",
                "cache-node",
                "cachectl",
                "cache-bench",
                "cache-client-example",
                "cache-chaos",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Log directories written by earlier releases, read by the migration tests.
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
    ]
)
