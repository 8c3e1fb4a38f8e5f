import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// What a mounted chain serves, read the ways programs read files: whole, at random, from
/// many threads, through a memory map; what the mount refuses; and its options.
final class MountTests: MountTestCase {
  /// The sizes where chunk arithmetic goes wrong, for 4K chunks: nothing, one byte,
  /// either side of a chunk boundary, and several chunks with a short last one.
  private let edgeSizes = [0, 1, 4095, 4096, 4097, 5 * 4096 + 123]

  func testArchiveServesTheOriginalAtEveryEdgeSize() throws {
    try assertServesEdgeSizes(extension: ".chain")
  }

  func testFolderServesTheOriginalAtEveryEdgeSize() throws {
    try assertServesEdgeSizes(extension: "")
  }

  private func assertServesEdgeSizes(extension suffix: String) throws {
    for size in edgeSizes {
      let name = "clip-\(size).bin"
      let label = "\(suffix.isEmpty ? "folder" : "archive"), \(size) bytes"
      let bytes = try writeRandomFile(name, count: size)
      try backdate(name)
      let root = try encode(name, to: "clip-\(size)" + suffix, chunkSize: "4K")
      let mountPoint = try makeMountPoint("mnt-\(size)")

      let served = try mountFile(
        name, from: "clip-\(size)" + suffix, at: mountPoint, trust(root, "4K"))
      XCTAssertTrue(try readWhole(served) == bytes, "\(label): contents differ")
      XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mountPoint), [name])
      assertSameAttributes(served, as: path(name), label)
    }
  }

  private func assertSameAttributes(_ served: String, as original: String, _ label: String) {
    let (mounted, mountedError) = fileStatus(served)
    let (source, sourceError) = fileStatus(original)
    XCTAssertNil(mountedError, label)
    XCTAssertNil(sourceError, label)
    XCTAssertEqual(mounted.st_mode & S_IFMT, S_IFREG, "\(label): not a regular file")
    XCTAssertEqual(mounted.st_mode & 0o7777, 0o444, "\(label): mode")
    XCTAssertEqual(mounted.st_size, source.st_size, "\(label): size")
    XCTAssertEqual(mounted.st_mtim.tv_sec, source.st_mtim.tv_sec, "\(label): mtime")
    XCTAssertEqual(mounted.st_mtim.tv_nsec, source.st_mtim.tv_nsec, "\(label): mtime")
  }

  // MARK: Readers

  /// Four megabytes in 64K chunks behind a cache of about three chunks, so that random
  /// reads keep evicting.
  private func mountLargeClip() throws -> (bytes: [UInt8], served: String) {
    let bytes = try writeRandomFile("large.bin", count: 4 * 1024 * 1024 + 777)
    let root = try encode("large.bin", to: "large.chain", chunkSize: "64K")
    let options = ["-o", "cache_size=256K,readahead=1"]
    let served = try mountFile(
      "large.bin", from: "large.chain", at: makeMountPoint(), trust(root, "64K") + options)
    return (bytes, served)
  }

  /// Reads `count` random ranges, some running past the end of the file, and describes
  /// the first that came back wrong.
  private func firstBadRead(
    _ descriptor: Int32, of bytes: [UInt8], count: Int, seed: UInt64
  ) -> String? {
    var generator = SeededGenerator(seed: seed)
    for _ in 0..<count {
      let offset = Int.random(in: 0..<bytes.count + 100, using: &generator)
      let length = Int.random(in: 1...(200 * 1024), using: &generator)

      let got = read(descriptor, offset: offset, count: length)
      let expected = bytes[min(offset, bytes.count)..<min(offset + length, bytes.count)]
      if got.error != nil || !got.bytes.matches(expected) {
        return "seed \(seed): \(length) bytes at \(offset): errno \(got.error ?? 0), "
          + "\(got.bytes.count) bytes where \(expected.count) were expected"
      }
    }
    return nil
  }

  /// O_DIRECT sends each read to the driver: through the page cache, repeated ranges
  /// would never reach it, nor its cache.
  func testRandomReadsWithASmallCache() throws {
    let (bytes, served) = try mountLargeClip()
    let descriptor = open(served, O_RDONLY | openDirect)
    XCTAssertGreaterThanOrEqual(descriptor, 0, "open: errno \(errno)")
    defer { close(descriptor) }

    XCTAssertNil(firstBadRead(descriptor, of: bytes, count: 3000, seed: 20_240_601))
  }

  /// Eight threads at once, half through the page cache and half straight to the driver.
  func testConcurrentReaders() throws {
    let (bytes, served) = try mountLargeClip()
    let failures = FailureList()
    let readers = DispatchGroup()

    for reader in 0..<8 {
      readers.enter()
      Thread.detachNewThread { [self] in
        defer { readers.leave() }
        let descriptor = open(served, O_RDONLY | (reader % 2 == 0 ? 0 : openDirect))
        guard descriptor >= 0 else { return failures.add("reader \(reader): errno \(errno)") }
        defer { close(descriptor) }
        if let failure = firstBadRead(descriptor, of: bytes, count: 400, seed: UInt64(reader)) {
          failures.add("reader \(reader): \(failure)")
        }
      }
    }

    XCTAssertEqual(readers.wait(timeout: .now() + 60), .success, "readers still running")
    XCTAssertEqual(failures.entries, [])
  }

  func testMemoryMappedReader() throws {
    let (bytes, served) = try mountLargeClip()
    let descriptor = open(served, O_RDONLY)
    XCTAssertGreaterThanOrEqual(descriptor, 0, "open: errno \(errno)")
    defer { close(descriptor) }

    let mapping = mmap(nil, bytes.count, PROT_READ, MAP_SHARED, descriptor, 0)
    guard let mapping, mapping != MAP_FAILED else { return XCTFail("mmap: errno \(errno)") }
    defer { munmap(mapping, bytes.count) }

    // Back to front, so that each page faults on its own before readahead brings it in.
    let mapped = UnsafeRawBufferPointer(start: mapping, count: bytes.count)
    for offset in stride(from: bytes.count - 1, through: 0, by: -4096) {
      XCTAssertEqual(mapped[offset], bytes[offset], "byte \(offset)")
    }
    XCTAssertEqual(memcmp(mapping, bytes, bytes.count), 0, "mapped contents differ")
  }

  // MARK: Writes

  func testWritesAreRefusedWithEROFS() throws {
    let bytes = try writeRandomFile("clip.bin", count: 10_000)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "4K")
    let mountPoint = try makeMountPoint()
    let served = try mountFile("clip.bin", from: "clip.chain", at: mountPoint, trust(root, "4K"))

    for flags in [O_WRONLY, O_RDWR, O_WRONLY | O_APPEND, O_WRONLY | O_TRUNC] {
      let descriptor = open(served, flags)
      let error = errno
      if descriptor >= 0 { close(descriptor) }
      XCTAssertEqual(descriptor, -1, "opened for writing with flags \(flags)")
      XCTAssertEqual(error, EROFS, "flags \(flags): errno \(error)")
    }
    let created = open(mountPoint + "/new.bin", O_WRONLY | O_CREAT | O_EXCL, 0o644)
    let createError = errno
    if created >= 0 { close(created) }
    XCTAssertEqual(created, -1, "created a file in the mount")
    XCTAssertEqual(createError, EROFS, "create: errno \(createError)")
    XCTAssertEqual(mkdir(mountPoint + "/folder", 0o755), -1)
    XCTAssertEqual(errno, EROFS, "mkdir")
    XCTAssertEqual(truncate(served, 0), -1)
    XCTAssertEqual(errno, EROFS, "truncate")

    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mountPoint), ["clip.bin"])
    XCTAssertTrue(try readWhole(served) == bytes)
  }

  // MARK: Options

  func testRootAndChunkSizeAsMountOptions() throws {
    let bytes = try writeRandomFile("clip.bin", count: 3 * 65536 + 10)
    let root = try encode("clip.bin", to: "clip", chunkSize: "64K")
    let options = ["-o", "root=\(root),chunk_size=64K"]

    let served = try mountFile("clip.bin", from: "clip", at: makeMountPoint(), options)
    XCTAssertTrue(try readWhole(served) == bytes)
  }

  /// The kernel's readahead is a setting of the mount's own device, which only root may
  /// change; the tests run as root.
  func testKernelReadaheadIsSetForTheMount() throws {
    try writeRandomFile("clip.bin", count: 5000)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "4K")

    for (option, kibibytes) in [(nil, "512"), ("2M", "2048"), ("0", "128")] {
      let extra = option.map { ["-o", "kernel_readahead=\($0)"] } ?? []
      let mountPoint = try makeMountPoint()
      let served = try mountFile("clip.bin", from: "clip.chain", at: mountPoint,
        trust(root, "4K") + extra)
      let (major, minor) = deviceNumbers(fileStatus(served).info.st_dev)
      let setting = try String(
        contentsOfFile: "/sys/class/bdi/\(major):\(minor)/read_ahead_kb", encoding: .utf8)
      XCTAssertEqual(setting.trimmingCharacters(in: .whitespacesAndNewlines), kibibytes,
        "kernel_readahead=\(option ?? "default")")
      XCTAssertEqual(try fusermount(mountPoint).status, 0)
    }
  }

  func testChunkSizeOtherThanTheChainsIsAnIntegrityFailure() throws {
    try writeRandomFile("clip.bin", count: 3 * 65536)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "64K")
    let mountPoint = try makeMountPoint()

    // A root given alone stands with the default chunk size, 1M.
    let claims = [trust(root, "128K"), ["-o", "root=\(root),chunk_size=4K"], ["--root", root]]
    for claim in claims {
      let run = try mount("clip.chain", at: mountPoint, claim)
      XCTAssertEqual(run.status, 3, "\(claim): \(run.stderr)")
      XCTAssertTrue(run.stderr.contains("65536"), run.stderr)
      XCTAssertFalse(isMounted(mountPoint), "\(claim)")
      XCTAssertEqual(driverProcesses(at: mountPoint), [], "\(claim)")
    }
  }

  func testMissingMountPointIsARuntimeError() throws {
    try writeRandomFile("clip.bin", count: 5000)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "4K")

    let run = try mount("clip.chain", at: path("absent"), trust(root, "4K"))
    XCTAssertEqual(run.status, 1, run.stderr)
    XCTAssertTrue(run.stderr.contains(path("absent")), run.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: path("absent")))
  }

  func testBadOptionValuesAreUsageErrors() throws {
    try writeRandomFile("clip.bin", count: 5000)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "4K")
    let mountPoint = try makeMountPoint()

    let anchor = "root=\(root),chunk_size=4K"
    let cases = [
      ("cache_size", "\(anchor),cache_size=abc"), ("readahead", "\(anchor),readahead=-1"),
      ("verify", "\(anchor),verify=sometimes"), ("jobs", "\(anchor),jobs=0"),
      ("root", "root=abc,chunk_size=4K"), ("chunk_size", "root=\(root),chunk_size=4Q"),
      ("kernel_readahead", "\(anchor),kernel_readahead=1G"),
    ]
    for (subject, option) in cases {
      let run = try mount("clip.chain", at: mountPoint, ["-o", option])
      assertUsageError(run, command: "mount", mentioning: subject)
      XCTAssertFalse(isMounted(mountPoint), option)
    }
  }

  /// An option that neither chainfs nor libfuse knows is a usage error, found before
  /// anything mounts; libfuse names the option it refused.
  func testUnknownOptionMountsNothing() throws {
    try writeRandomFile("clip.bin", count: 5000)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "4K")
    let mountPoint = try makeMountPoint()

    let run = try mount("clip.chain", at: mountPoint, trust(root, "4K") + ["-o", "frobnicate"])
    XCTAssertEqual(run.status, 2, run.stderr)
    XCTAssertTrue(run.stderr.contains("frobnicate"), run.stderr)
    XCTAssertFalse(isMounted(mountPoint))
    XCTAssertEqual(driverProcesses(at: mountPoint), [])
  }

  func testBackgroundVerificationServesTheWholeFile() throws {
    let bytes = try writeRandomFile("clip.bin", count: 40 * 65536 + 999)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "64K")
    let options = ["-o", "verify=background,cache_size=1M"]

    let served = try mountFile(
      "clip.bin", from: "clip.chain", at: makeMountPoint(), trust(root, "64K") + options)
    usleep(300_000)
    XCTAssertTrue(try readWhole(served) == bytes)
    let tail = read(served, offset: bytes.count - 70_000, count: 70_000, flags: openDirect)
    XCTAssertNil(tail.error)
    XCTAssertTrue(tail.bytes.matches(bytes.suffix(70_000)))
  }

  // MARK: mount(8)

  /// The helper that mount(8) and fstab run, with options they add for every filesystem,
  /// finding chainfs on PATH as it would once installed.
  func testMountHelperScript() throws {
    let bytes = try writeRandomFile("clip.bin", count: 5 * 65536 + 1)
    let root = try encode("clip.bin", to: "clip.chain", chunkSize: "64K")
    let mountPoint = try makeMountPoint()
    var environment = ProcessInfo.processInfo.environment
    let toolFolder = URL(fileURLWithPath: try toolPath).deletingLastPathComponent().path
    environment["PATH"] = toolFolder + ":" + (environment["PATH"] ?? "/usr/bin:/bin")

    let helper = repositoryRoot + "/mount-scripts/mount.chainfs"
    let options = "root=\(root),chunk_size=64K,defaults,nofail"
    let run = try wait(
      spawn(helper, [path("clip.chain"), mountPoint, "-o", options], environment: environment))
    XCTAssertEqual(run.status, 0, run.stderr)
    XCTAssertTrue(isMounted(mountPoint))
    _ = try driver(at: mountPoint)
    XCTAssertTrue(try readWhole(mountPoint + "/clip.bin") == bytes)
  }
}

/// The repository's top folder, found from this file's place in it.
var repositoryRoot: String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
}

/// What the reader threads found wrong, gathered under a lock.
private final class FailureList: @unchecked Sendable {
  private let lock = NSLock()
  private var list: [String] = []

  func add(_ failure: String) { lock.withLock { list.append(failure) } }

  var entries: [String] { lock.withLock { list } }
}
