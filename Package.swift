// swift-tools-version:5.9
import PackageDescription

let package = Package(
  name: "chainfs",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "chainfs", targets: ["chainfs"]),
    .library(name: "ChainCore", targets: ["ChainCore"]),
  ],
  targets: [
    // Thin C shims: a module map and one header each, nothing else.
    .systemLibrary(
      name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    .systemLibrary(
      name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),

    // The format, hashing, chain encoding and verification: no FUSE, no argv.
    .target(name: "ChainCore", dependencies: ["CCrypto"]),

    // The FUSE adapter: serves one verified file from a chain.
    .target(name: "ChainFUSE", dependencies: ["ChainCore", "CFuse"]),

    // The command: argument parsing and one file per subcommand.
    .executableTarget(name: "chainfs", dependencies: ["ChainCore", "ChainFUSE"]),

    .testTarget(name: "ChainCoreTests", dependencies: ["ChainCore"]),
    .testTarget(name: "ChainFUSETests", dependencies: ["ChainFUSE", "ChainCore"]),
    .testTarget(name: "ChainfsTests", dependencies: ["ChainCore"]),
  ]
)
