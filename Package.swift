// swift-tools-version: 6.1
import PackageDescription

// The target graph is the architecture (see DESIGN.md §1): arrows point toward `ShipManifest`,
// which is pure (text and an environment dictionary in, a typed `Manifest` out). `Supervision` and
// `Relay` never import each other; they meet in `MothershipCLI`.
let package = Package(
    name: "mothership",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mothership", targets: ["MothershipCLI"])
    ],
    dependencies: [
        .package(url: "https://github.com/LebJe/TOMLKit.git", exact: "0.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        // postgres-nio already builds swift-crypto (3.9 up to 6); the range leaves the choice to it.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // No traits: the defaults (FileSystem, MultiThread, Disassembler) are not needed, since each
        // event loop owns its own engine and store, and an explicit empty set keeps SwiftPM from
        // recompiling WasmKit whenever it switches between build and test.
        .package(url: "https://github.com/swiftwasm/WasmKit.git", exact: "0.4.2", traits: []),
    ],
    targets: [
        .target(
            name: "ShipManifest",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")]
        ),
        .target(
            name: "Supervision",
            dependencies: [
                "ShipManifest",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "CMothershipSystem"),
        // System compression libraries for the relay's response compression (SPEC §5.2).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CBrotli", pkgConfig: "libbrotlienc", providers: [.apt(["libbrotli-dev"])]),
        // Tests only: decoding what the relay encodes (the binary never links it).
        .systemLibrary(
            name: "CBrotliDecoder", pkgConfig: "libbrotlidec", providers: [.apt(["libbrotli-dev"])]),
        .target(name: "Dashboard", dependencies: ["Supervision"]),
        .target(
            name: "ProcessControl",
            dependencies: [
                "Supervision",
                "CMothershipSystem",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Probes",
            dependencies: [
                "Supervision",
                "ShipManifest",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FlagshipElection",
            dependencies: [
                "Supervision",
                "ShipManifest",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DockingProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "Relay",
            dependencies: [
                "ShipManifest",
                "CMothershipSystem",
                "DockingProtocol",
                "CZlib",
                "CBrotli",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
            // No -enforce-exclusivity=unchecked: release builds keep Swift's dynamic exclusivity
            // checks, as debug builds do. The hot path is written so that the compiler proves most
            // of them away (every access to such a property is instantaneous), and the few
            // properties it cannot prove say why they are safe in an @exclusivity(unchecked) of
            // their own (docs/PERFORMANCE.md has the figures).
        ),
        .target(
            name: "Payloads",
            dependencies: [
                "Relay",
                "ShipManifest",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // Log files with rotation (SPEC §12.5): written off the output path, never blocking it.
        .target(
            name: "LogFiles",
            dependencies: ["Supervision", .product(name: "Metrics", package: "swift-metrics")]
        ),
        .target(
            name: "Control",
            dependencies: [
                "Supervision",
                "CMothershipSystem",
                "ShipManifest",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "MothershipCLI",
            dependencies: [
                "CMothershipSystem",
                "Control",
                "LogFiles",
                "ShipManifest",
                "Supervision",
                "ProcessControl",
                "Probes",
                "Relay",
                "Payloads",
                "FlagshipElection",
                "Dashboard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            // A release binary carries the Swift runtime and Foundation statically: one file to
            // install, and only the pages it uses are resident (about 10 MB less RSS than mapping
            // the shared Foundation and ICU libraries, which TOMLKit pulls in).
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-static-stdlib", "-Xlinker", "--start-group", "-Xlinker", "-lFoundationEssentials",
                        "-Xlinker", "-lFoundationInternationalization", "-Xlinker", "-l_FoundationICU",
                        "-Xlinker", "-l_FoundationCShims", "-Xlinker", "-l_FoundationCollections",
                        "-Xlinker", "-lCoreFoundation", "-Xlinker", "--end-group", "-Xlinker", "-lstdc++",
                        "-Xclang-linker", "-no-pie",
                    ],
                    .when(configuration: .release))
            ]
        ),
        .target(
            name: "MothershipTestSupport",
            dependencies: [
                "ShipManifest", "Supervision", "CZlib", "CBrotliDecoder",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ShipManifestTests",
            dependencies: ["ShipManifest", "MothershipTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SupervisionTests",
            dependencies: ["Supervision", "ShipManifest", "MothershipTestSupport"]
        ),
        .testTarget(
            name: "ProcessControlTests",
            dependencies: ["CMothershipSystem", "ProcessControl", "Supervision", "MothershipTestSupport"]
        ),
        .testTarget(
            name: "ProbesTests",
            dependencies: [
                "Probes", "Relay", "Supervision", "ShipManifest", "MothershipTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RelayTests",
            dependencies: [
                "Relay", "ShipManifest", "MothershipTestSupport", "DockingProtocol",
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "PayloadsTests",
            dependencies: [
                "Payloads", "Relay", "ShipManifest", "MothershipTestSupport",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WAT", package: "WasmKit"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DockingProtocolTests",
            dependencies: [
                "DockingProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FlagshipElectionTests",
            dependencies: [
                "FlagshipElection", "Supervision", "ShipManifest", "MothershipTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ControlTests",
            dependencies: [
                "Control", "Supervision", "ShipManifest", .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LogFilesTests",
            dependencies: ["LogFiles"]
        ),
        .testTarget(
            name: "DashboardTests",
            dependencies: ["Dashboard", "Supervision", "MothershipTestSupport"]
        ),
        .testTarget(
            name: "EndToEndTests",
            // Depending on the executable makes `swift build --build-tests` build the binary the tests run.
            dependencies: [
                "MothershipTestSupport", "MothershipCLI", "Relay", .product(name: "WAT", package: "WasmKit"),
            ]
        ),
        .testTarget(
            name: "MothershipCLITests",
            dependencies: [
                "MothershipCLI", "Relay", "MothershipTestSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
