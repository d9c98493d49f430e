// swift-tools-version: 6.1
// Coverage-guided fuzzing of Sluice's parsers with libFuzzer (scripts/fuzz builds and runs it):
// apart from the main package because a libFuzzer binary has no `main` of its own.
import PackageDescription

let package = Package(
    name: "sluice-fuzz",
    dependencies: [.package(name: "sluice", path: "..")],
    targets: [
        .executableTarget(
            name: "SluiceFuzz",
            dependencies: [
                .product(name: "SluiceService", package: "sluice"),
                .product(name: "SluiceRedis", package: "sluice"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    ]
)
