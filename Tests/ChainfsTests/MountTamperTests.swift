import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// Chains that do not verify: a mount serves the chunks before the first bad record, fails
/// every read from it on with EIO, and stays up.
final class MountTamperTests: MountTestCase {
  private let chunkSize = 65536
  private let badChunk = 3
  private var badStart: Int { badChunk * chunkSize }

  /// Nine chunks and a bit of random bytes, encoded as `clip.chain` or `clip`; returns
  /// the bytes and the root.
  private func makeChain(_ output: String = "clip.chain") throws -> ([UInt8], String) {
    let bytes = try writeRandomFile("clip.bin", count: 9 * chunkSize + 4321)
    return (bytes, try encode("clip.bin", to: output, chunkSize: "64K"))
  }

  private func mountClip(_ source: String, _ options: [String]) throws -> String {
    try mountFile("clip.bin", from: source, at: makeMountPoint(), options)
  }

  func testTamperedChunkDataIsNeverServed() throws {
    let (bytes, root) = try makeChain()
    try flipBit(inRecord: badChunk, at: chunkSize / 2, of: "clip.chain", chunkSize: chunkSize)
    let served = try mountClip("clip.chain", trust(root, "64K"))

    try assertServesOnlyBeforeBadChunk(served, bytes)
  }

  /// The link a record carries is hashed with its chunk: changing it fails that record.
  func testTamperedLinkIsNeverServed() throws {
    let (bytes, root) = try makeChain()
    try flipBit(inRecord: badChunk, at: chunkSize + 5, of: "clip.chain", chunkSize: chunkSize)
    let served = try mountClip("clip.chain", trust(root, "64K"))

    try assertServesOnlyBeforeBadChunk(served, bytes)
  }

  func testMissingRecordFileFailsAtItsChunk() throws {
    let (bytes, root) = try makeChain("clip")
    try FileManager.default.removeItem(atPath: path("clip/" + String(format: "%08d.rec", badChunk)))
    let served = try mountClip("clip", trust(root, "64K"))

    try assertServesOnlyBeforeBadChunk(served, bytes)
  }

  /// Background verification meets the bad record on its own; what is served stays the same.
  func testBackgroundVerificationOfATamperedChain() throws {
    let (bytes, root) = try makeChain()
    try flipBit(inRecord: badChunk, at: 1, of: "clip.chain", chunkSize: chunkSize)
    let served = try mountClip("clip.chain", trust(root, "64K") + ["-o", "verify=background"])
    usleep(300_000)

    try assertServesOnlyBeforeBadChunk(served, bytes)
  }

  /// The backing data changes under a mount after a random reader was served a chunk: once
  /// that chunk has left the cache, its pages are checked one by one against the digests
  /// kept for it. A page left alone is still served (a whole-chunk check would refuse it);
  /// the changed page fails, and with it the chunk and those after it.
  func testChangeAfterVerificationIsCaughtPageByPage() throws {
    let (bytes, root) = try makeChain()
    let served = try mountClip(
      "clip.chain", trust(root, "64K") + ["-o", "cache_size=256K,readahead=1"])
    let first = read(served, offset: badStart + 10, count: 100, flags: openDirect)
    XCTAssertNil(first.error)
    usleep(500_000)
    for index in (badChunk + 1)..<9 {
      XCTAssertNil(read(served, offset: index * chunkSize, count: 10, flags: openDirect).error)
    }

    try flipBit(inRecord: badChunk, at: chunkSize / 2, of: "clip.chain", chunkSize: chunkSize)
    let untouched = read(served, offset: badStart + 10, count: 100, flags: openDirect)
    XCTAssertNil(untouched.error, "a page the change did not touch")
    XCTAssertTrue(untouched.bytes.matches(bytes[(badStart + 10)..<(badStart + 110)]))
    let changed = read(served, offset: badStart + chunkSize / 2, count: 100, flags: openDirect)
    XCTAssertEqual(changed.error, EIO, "the changed page")
    for later in [badStart + 10, badStart + chunkSize] {
      XCTAssertEqual(read(served, offset: later, count: 1, flags: openDirect).error, EIO)
    }
    assertStillServing(served, bytes)
  }

  /// A later chunk is read first, so that the failure is found while moving the verified
  /// frontier towards it; then the good prefix, the bad chunk and a read across them.
  private func assertServesOnlyBeforeBadChunk(
    _ served: String, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let later = read(served, offset: badStart + 2 * chunkSize + 17, count: 100)
    XCTAssertEqual(later.error, EIO, "a later chunk", file: file, line: line)
    XCTAssertEqual(later.bytes, [], file: file, line: line)

    let prefix = read(served, offset: 0, count: badStart)
    XCTAssertNil(prefix.error, "the chunks before the bad one", file: file, line: line)
    XCTAssertTrue(prefix.bytes.matches(bytes[..<badStart]), file: file, line: line)

    let bad = read(served, offset: badStart + 10, count: 10)
    XCTAssertEqual(bad.error, EIO, "inside the bad chunk", file: file, line: line)
    XCTAssertEqual(bad.bytes, [], file: file, line: line)

    // Across the boundary a reader may get the good part first, but nothing beyond it.
    let across = read(served, offset: badStart - 100, count: 200)
    XCTAssertEqual(across.error, EIO, "across the boundary", file: file, line: line)
    XCTAssertLessThanOrEqual(across.bytes.count, 100, file: file, line: line)
    let good = bytes[(badStart - 100)...].prefix(across.bytes.count)
    XCTAssertTrue(across.bytes.matches(good), file: file, line: line)

    assertStillServing(served, bytes, file: file, line: line)
  }

  /// The driver answers fresh requests (O_DIRECT, past the page cache) after a failure.
  private func assertStillServing(
    _ served: String, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line
  ) {
    let mountPoint = URL(fileURLWithPath: served).deletingLastPathComponent().path
    XCTAssertTrue(isMounted(mountPoint), file: file, line: line)
    let (info, statError) = fileStatus(served)
    XCTAssertNil(statError, file: file, line: line)
    XCTAssertEqual(Int(info.st_size), bytes.count, file: file, line: line)

    let again = read(served, offset: chunkSize - 1000, count: 5000, flags: openDirect)
    XCTAssertNil(again.error, "earlier chunks after the failure", file: file, line: line)
    let expected = bytes[(chunkSize - 1000)..<(chunkSize + 4000)]
    XCTAssertTrue(again.bytes.matches(expected), file: file, line: line)
    let bad = read(served, offset: badStart, count: 1, flags: openDirect)
    XCTAssertEqual(bad.error, EIO, "the bad chunk stays bad", file: file, line: line)
  }

  func testWrongRootServesNothing() throws {
    let (bytes, root) = try makeChain()
    let served = try mountClip("clip.chain", trust(wrongRoot(root), "64K"))

    let first = read(served, offset: 0, count: 1)
    XCTAssertEqual(first.error, EIO)
    XCTAssertEqual(first.bytes, [])
    let last = read(served, offset: bytes.count - 1, count: 1, flags: openDirect)
    XCTAssertEqual(last.error, EIO)
    XCTAssertEqual(fileStatus(served).info.st_size, off_t(bytes.count), "stat still works")
  }

  private func wrongRoot(_ root: String) -> String {
    String(root.dropLast()) + (root.hasSuffix("0") ? "1" : "0")
  }

  // MARK: verify=full

  func testFullVerificationRefusesATamperedChain() throws {
    let (_, root) = try makeChain()
    try flipBit(inRecord: 7, at: 100, of: "clip.chain", chunkSize: chunkSize)
    let mountPoint = try makeMountPoint()

    let spellings = [
      trust(root, "64K") + ["-o", "verify=full"],
      ["-o", "verify=full,root=\(root),chunk_size=64K"],
    ]
    for options in spellings {
      let run = try mount("clip.chain", at: mountPoint, options)
      XCTAssertEqual(run.status, 3, run.stderr)
      XCTAssertTrue(run.stderr.contains("chunk 7"), run.stderr)
      XCTAssertFalse(isMounted(mountPoint))
      XCTAssertEqual(driverProcesses(at: mountPoint), [])
      XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mountPoint), [])
    }
  }

  func testFullVerificationRefusesAWrongRoot() throws {
    let (_, root) = try makeChain()
    let mountPoint = try makeMountPoint()

    let run = try mount(
      "clip.chain", at: mountPoint, trust(wrongRoot(root), "64K") + ["-o", "verify=full"])
    XCTAssertEqual(run.status, 3, run.stderr)
    XCTAssertTrue(run.stderr.contains("chunk 0"), run.stderr)
    XCTAssertFalse(isMounted(mountPoint))
  }

  func testFullVerificationMountsAGoodChain() throws {
    let (bytes, root) = try makeChain()

    let served = try mountClip("clip.chain", trust(root, "64K") + ["-o", "verify=full"])
    XCTAssertTrue(try readWhole(served) == bytes)
  }
}
