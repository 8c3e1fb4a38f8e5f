import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// How a mount ends: by signal, by fusermount3, or killed and then cleared by hand.
final class MountLifecycleTests: MountTestCase {
  private var bytes: [UInt8] = []
  /// The trust anchor options for clip.chain.
  private var anchor: [String] = []

  override func setUpWithError() throws {
    try super.setUpWithError()
    bytes = try writeRandomFile("clip.bin", count: 4 * 65536 + 500)
    anchor = trust(try encode("clip.bin", to: "clip.chain", chunkSize: "64K"), "64K")
  }

  private func assertUnmounted(
    _ mountPoint: String, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    XCTAssertFalse(isMounted(mountPoint), "still in /proc/mounts", file: file, line: line)
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: mountPoint), [], file: file, line: line)
  }

  /// Waits for the adopted driver and fails unless it exited by itself with status 0.
  private func assertDriverExitsCleanly(
    _ pid: pid_t, file: StaticString = #filePath, line: UInt = #line
  ) {
    guard let status = collectExit(of: pid, timeout: 10) else {
      return XCTFail("driver \(pid) did not exit", file: file, line: line)
    }
    XCTAssertEqual(status & 0x7f, 0, "killed by signal \(status & 0x7f)", file: file, line: line)
    XCTAssertEqual((status >> 8) & 0xff, 0, "exit status", file: file, line: line)
  }

  /// Without -f the command returns once the file is readable, and leaves a driver in a
  /// session of its own whose command line is the mount's, so that pgrep can find it.
  func testCommandReturnsWhileItsDriverServes() throws {
    let mountPoint = try makeMountPoint()
    let run = try mount("clip.chain", at: mountPoint, anchor)
    XCTAssertEqual(run.status, 0, run.stderr)
    XCTAssertEqual(run.stdout, "")
    XCTAssertTrue(try readWhole(mountPoint + "/clip.bin") == bytes)

    let pid = try driver(at: mountPoint)
    let commandLine = try XCTUnwrap(FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"))
    let arguments = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    let mounted = ["mount", path("clip.chain"), mountPoint] + anchor + ["--ready-fd", "3"]
    XCTAssertEqual(arguments, [try toolPath] + mounted)
    let status = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = status.split(separator: ")").last?.split(separator: " ") ?? []
    XCTAssertEqual(fields.count > 3 ? String(fields[3]) : nil, String(pid), "session id")
  }

  func testSigtermUnmountsAndTheDriverExitsZero() throws {
    let mountPoint = try makeMountPoint()
    let served = try mountFile("clip.bin", from: "clip.chain", at: mountPoint, anchor)
    XCTAssertTrue(try readWhole(served) == bytes)

    let pid = try driver(at: mountPoint)
    XCTAssertEqual(kill(pid, SIGTERM), 0)
    assertDriverExitsCleanly(pid)
    try assertUnmounted(mountPoint)
  }

  func testSigintEndsAForegroundMount() throws {
    let mountPoint = try makeMountPoint()
    let started = try startForeground("clip.bin", from: "clip.chain", at: mountPoint, anchor)
    XCTAssertTrue(isMounted(mountPoint), "-f ended before serving")
    XCTAssertTrue(try readWhole(mountPoint + "/clip.bin") == bytes)
    XCTAssertNil(collectExit(of: started.pid, timeout: 0.2), "-f returned while mounted")

    XCTAssertEqual(kill(started.pid, SIGINT), 0)
    let run = try wait(started)
    XCTAssertTrue(run.exited, "killed by SIGINT instead of unmounting")
    XCTAssertEqual(run.status, 0, run.stderr)
    try assertUnmounted(mountPoint)
  }

  func testFusermountUnmountsAndTheDriverExitsZero() throws {
    let mountPoint = try makeMountPoint()
    let served = try mountFile("clip.bin", from: "clip.chain", at: mountPoint, anchor)
    XCTAssertTrue(try readWhole(served) == bytes)
    let pid = try driver(at: mountPoint)

    let run = try fusermount(mountPoint)
    XCTAssertEqual(run.status, 0, run.stderr)
    assertDriverExitsCleanly(pid)
    try assertUnmounted(mountPoint)
  }

  /// A killed driver leaves the mount point stale (ENOTCONN). chainfs says how to clear
  /// it rather than failing obscurely, and mounts again once it is cleared. The folder's
  /// attributes are in the kernel's cache when the driver dies, so that `stat` alone would
  /// not see that the mount is stale.
  func testStaleMountAfterSigkill() throws {
    let mountPoint = try makeMountPoint()
    try mountFile("clip.bin", from: "clip.chain", at: mountPoint, anchor)
    XCTAssertNil(fileStatus(mountPoint).error)
    let pid = try driver(at: mountPoint)
    XCTAssertEqual(kill(pid, SIGKILL), 0)
    let status = try XCTUnwrap(collectExit(of: pid, timeout: 10), "driver survived SIGKILL")
    XCTAssertEqual(status & 0x7f, SIGKILL)
    XCTAssertEqual(openError(mountPoint, flags: O_RDONLY | O_DIRECTORY), ENOTCONN)

    let refused = try mount("clip.chain", at: mountPoint, anchor)
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(refused.stderr.contains("fusermount3 -u \(mountPoint)"), refused.stderr)
    XCTAssertEqual(driverProcesses(at: mountPoint), [])

    XCTAssertEqual(try fusermount(mountPoint).status, 0)
    XCTAssertNil(fileStatus(mountPoint).error)
    let served = try mountFile("clip.bin", from: "clip.chain", at: mountPoint, anchor)
    XCTAssertTrue(try readWhole(served) == bytes)
  }

  /// A program that runs `chainfs mount` and reads its output to the end, as Foundation's
  /// Process and many a script do, must see that end when the command returns; a driver
  /// that kept the descriptors it inherited would hold it open until unmounted.
  func testBackgroundDriverKeepsNoInheritedDescriptor() throws {
    let mountPoint = try makeMountPoint()
    var ends: [Int32] = [0, 0]
    XCTAssertEqual(pipe(&ends), 0)
    defer { close(ends[0]) }

    let started = try spawn(
      toolPath, ["mount", path("clip.chain"), mountPoint] + anchor, inherit: [ends[1]: 7])
    close(ends[1])
    let run = try wait(started)
    XCTAssertEqual(run.status, 0, run.stderr)
    let pid = try driver(at: mountPoint)

    var reader = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
    XCTAssertEqual(poll(&reader, 1, 2_000), 1, "descriptor 7 still open in the driver")
    let held = openFiles(of: pid)
    XCTAssertNil(held[7], "the driver holds: \(held.sorted { $0.key < $1.key })")
  }

  /// What each open descriptor of `pid` refers to.
  private func openFiles(of pid: pid_t) -> [Int32: String] {
    let folder = "/proc/\(pid)/fd"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    var files: [Int32: String] = [:]
    for entry in entries {
      let target = try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + entry)
      if let descriptor = Int32(entry) { files[descriptor] = target ?? "?" }
    }
    return files
  }
}
