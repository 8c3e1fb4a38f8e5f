import XCTest

/// Help, usage errors and exit statuses, as a user or a script meets them.
final class UsageTests: ChainfsTestCase {
  private let commands = ["encode", "decode", "verify", "info", "mount"]

  func testNoArgumentsPrintsUsageToStandardErrorAndExitsTwo() throws {
    let run = try chainfs()
    XCTAssertEqual(run.status, 2)
    XCTAssertEqual(run.stdout, "")
    XCTAssertTrue(run.stderr.contains("Usage:"), run.stderr)
    for command in commands {
      XCTAssertTrue(run.stderr.contains("chainfs \(command) "), "\(command) missing from usage")
    }
  }

  func testToolHelpGoesToStandardOutput() throws {
    for flag in ["-h", "--help", "help"] {
      let run = try chainfs(flag)
      XCTAssertEqual(run.status, 0, flag)
      XCTAssertEqual(run.stderr, "", flag)
      XCTAssertTrue(run.stdout.contains("Usage:"), flag)
      XCTAssertTrue(run.stdout.contains("Exit status:"), flag)
    }
  }

  func testEachCommandHasHelp() throws {
    for command in commands {
      for flag in ["-h", "--help"] {
        let run = try chainfs(command, flag)
        let label = "\(command) \(flag)"
        XCTAssertEqual(run.status, 0, label)
        XCTAssertEqual(run.stderr, "", label)
        XCTAssertTrue(run.stdout.hasPrefix("Usage: chainfs \(command) "), "\(label): \(run.stdout)")
      }
    }
  }

  /// Help wins wherever it appears, so a half-typed command line can still ask for it.
  func testHelpAfterOtherArguments() throws {
    let run = try chainfs("verify", "absent.chain", "--root", "nonsense", "--help")
    XCTAssertEqual(run.status, 0)
    XCTAssertTrue(run.stdout.hasPrefix("Usage: chainfs verify "))
  }

  func testUnknownCommandExitsTwo() throws {
    let run = try chainfs("frobnicate")
    XCTAssertEqual(run.status, 2)
    XCTAssertEqual(run.stdout, "")
    XCTAssertEqual(
      run.stderrLines, ["chainfs: unknown command 'frobnicate' (see 'chainfs --help')"])
  }

  func testUnknownOptionIsAUsageError() throws {
    try writeRandomFile("clip.bin", count: 10)
    assertUsageError(
      try chainfs("encode", "clip.bin", "--bogus"), command: "encode", mentioning: "'--bogus'")
    assertUsageError(try chainfs("verify", "x", "-z"), command: "verify", mentioning: "'-z'")
    assertUsageError(
      try chainfs("info", "x", "--root", "00"), command: "info", mentioning: "'--root'")
    XCTAssertEqual(try listing(), ["clip.bin"], "nothing was written")
  }

  func testBadChunkSizeIsAUsageError() throws {
    try writeRandomFile("clip.bin", count: 10)
    for size in ["12Q", "0", "-5", "1.5K", "", "2G"] {
      let run = try chainfs("encode", "clip.bin", "--chunk-size", size)
      assertUsageError(run, command: "encode", mentioning: "--chunk-size")
    }
    for command in ["verify", "decode"] {
      let run = try chainfs(command, "clip.chain", "--chunk-size=lots")
      assertUsageError(run, command: command, mentioning: "--chunk-size")
    }
    XCTAssertEqual(try listing(), ["clip.bin"], "nothing was written")
  }

  func testBadRootIsAUsageError() throws {
    let good = String(repeating: "0f", count: 32)
    let roots = ["", "abc", String(good.dropLast()), good + "0", String(good.dropLast()) + "g"]
    for command in ["verify", "decode"] {
      for root in roots {
        let run = try chainfs(command, "clip.chain", "--root", root)
        assertUsageError(run, command: command, mentioning: "--root")
      }
    }
  }

  func testOtherUsageErrors() throws {
    assertUsageError(try chainfs("verify"), command: "verify", mentioning: "missing SOURCE")
    assertUsageError(try chainfs("encode", "a", "b"), command: "encode", mentioning: "'b'")
    assertUsageError(
      try chainfs("encode", "a", "--jobs", "0"), command: "encode", mentioning: "--jobs")
    assertUsageError(
      try chainfs("encode", "a", "--format", "zip"), command: "encode", mentioning: "zip")
    assertUsageError(
      try chainfs("decode", "a", "--output"), command: "decode", mentioning: "needs a value")
    assertUsageError(
      try chainfs("info", "a", "--json=yes"), command: "info", mentioning: "takes no value")
  }

  func testMissingInputIsARuntimeError() throws {
    for arguments in [["encode", "absent.bin"], ["verify", "absent"], ["info", "absent"]] {
      let run = try finish(start(arguments))
      XCTAssertEqual(run.status, 1, "\(arguments)")
      XCTAssertEqual(run.stderrLines.count, 1, "\(arguments): \(run.stderr)")
      XCTAssertTrue(run.stderr.contains("absent"), "\(arguments): \(run.stderr)")
    }
  }

  func testNotAChainIsARuntimeError() throws {
    try writeRandomFile("noise.bin", count: 4096)
    let run = try chainfs("verify", "noise.bin")
    XCTAssertEqual(run.status, 1)
    XCTAssertTrue(run.stderr.contains("not a chain"), run.stderr)
  }

  /// A folder whose manifest cannot be reached says why, rather than that it has none.
  func testUnreachableManifestSaysWhy() throws {
    try FileManager.default.createDirectory(atPath: path("loop"), withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      atPath: path("loop/manifest"), withDestinationPath: "manifest")
    let run = try chainfs("info", "loop")
    XCTAssertEqual(run.status, 1)
    XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
    XCTAssertTrue(run.stderr.contains("symbolic links"), run.stderr)
    XCTAssertFalse(run.stderr.contains("not a chain"), run.stderr)
  }
}
