// swift-tools-version: 6.1
import PackageDescription

// The target graph is the architecture (see DESIGN.md §1): arrows point toward `ShipManifest`,
// which is pure (text and an environment dictionary in, a typed `Manifest` out).
let package = Package(
    name: "mothership",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mothership", targets: ["MothershipCLI"])
    ],
    dependencies: [
        .package(url: "https://github.com/LebJe/TOMLKit.git", exact: "0.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "ShipManifest",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")]
        ),
        .executableTarget(
            name: "MothershipCLI",
            dependencies: [
                "ShipManifest",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "MothershipTestSupport",
            dependencies: ["ShipManifest"]
        ),
        .testTarget(
            name: "ShipManifestTests",
            dependencies: ["ShipManifest", "MothershipTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "EndToEndTests",
            // Depending on the executable makes `swift build --build-tests` build the binary the tests run.
            dependencies: ["MothershipTestSupport", "MothershipCLI"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
