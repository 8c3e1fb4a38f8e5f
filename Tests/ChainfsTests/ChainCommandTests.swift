import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// Encode, decode, verify and info on real chains, both formats.
final class ChainCommandTests: ChainfsTestCase {
  private let formats = ["folder", "archive"]

  private func chainName(_ format: String) -> String {
    format == "archive" ? "clip.chain" : "clip"
  }

  func testEncodePrintsOnlyTheRootOnStandardOutput() throws {
    let bytes = try writeRandomFile("clip.bin", count: 10 * 1024 + 100)
    let expected = definitionRoot(bytes, chunkSize: 1024)
    for format in formats {
      let run = try chainfs(
        "encode", "clip.bin", "--format", format, "--chunk-size", "1K", "-o", "loud-\(format)")
      XCTAssertEqual(run.status, 0, run.stderr)
      XCTAssertEqual(run.stdout, expected + "\n", format)
      XCTAssertEqual(run.stderrLines.count, 1, "one summary line: \(run.stderr)")
      XCTAssertTrue(run.stderr.hasPrefix("chainfs encode: encoded clip.bin"), run.stderr)

      let quiet = try chainfs(
        "encode", "clip.bin", "--format", format, "--chunk-size", "1K", "-o", "quiet-\(format)",
        "--quiet")
      XCTAssertEqual(quiet.status, 0, quiet.stderr)
      XCTAssertEqual(quiet.stdout, expected + "\n", format)
      XCTAssertEqual(quiet.stderr, "", format)
    }
  }

  func testEncodeWritesBesideTheInputByDefault() throws {
    try writeRandomFile("clip.bin", count: 3000)
    let folderRoot = try encode("clip.bin", "--chunk-size", "1K")
    let archiveRoot = try encode("clip.bin", "--chunk-size", "1K", "--format", "archive")
    XCTAssertEqual(folderRoot, archiveRoot)
    XCTAssertEqual(try listing(), ["clip", "clip.bin", "clip.chain"])
    XCTAssertEqual(
      try listing("clip"), ["00000000.rec", "00000001.rec", "00000002.rec", "manifest"])
  }

  func testMethodsGiveTheSameRoot() throws {
    let bytes = try writeRandomFile("clip.bin", count: 7 * 4096 + 1)
    for method in ["backwards-seeking", "forward-backwards"] {
      let root = try encode(
        "clip.bin", "--chunk-size", "4K", "--method", method, "-o", method, "--jobs", "3")
      XCTAssertEqual(root, definitionRoot(bytes, chunkSize: 4096), method)
    }
  }

  func testDecodeAndVerifyWithTheTrustAnchor() throws {
    let bytes = try writeRandomFile("clip.bin", count: 9 * 4096 + 777)
    for format in formats {
      let root = try encode("clip.bin", "--format", format, "--chunk-size", "4K")
      let trust = ["--root", root, "--chunk-size", "4K"]

      let verify = try finish(start(["verify", chainName(format)] + trust))
      XCTAssertEqual(verify.status, 0, verify.stderr)
      XCTAssertEqual(verify.stdout, "")
      XCTAssertFalse(verify.stderr.contains("warning"), verify.stderr)

      let decode = try finish(start(["decode", chainName(format), "-o", "out-\(format)"] + trust))
      XCTAssertEqual(decode.status, 0, decode.stderr)
      XCTAssertTrue(try contents("out-\(format)") == bytes, format)
    }
  }

  func testDecodeWritesTheRecordedNameByDefault() throws {
    let bytes = try writeRandomFile("clip.bin", count: 5000)
    let root = try encode("clip.bin", "--format", "archive", "--chunk-size", "1K")
    try FileManager.default.removeItem(atPath: path("clip.bin"))

    let run = try chainfs("decode", "clip.chain", "--root", root, "--chunk-size", "1K")
    XCTAssertEqual(run.status, 0, run.stderr)
    XCTAssertTrue(try contents("clip.bin") == bytes)
  }

  /// Without --root only the chain's own record vouches for it, and the user is told so.
  func testVerifyWithoutRootWarns() throws {
    try writeRandomFile("clip.bin", count: 5000)
    _ = try encode("clip.bin", "--chunk-size", "1K")
    let run = try chainfs("verify", "clip")
    XCTAssertEqual(run.status, 0, run.stderr)
    XCTAssertTrue(run.stderr.contains("warning: no --root given"), run.stderr)
  }

  func testTamperedChunkFailsVerifyAndDecode() throws {
    try writeRandomFile("clip.bin", count: 8 * 1024 + 10)
    for format in formats {
      let root = try encode("clip.bin", "--format", format, "--chunk-size", "1K")
      try flipBit(inChunk: 3, of: chainName(format))
      let trust = ["--root", root, "--chunk-size", "1K"]

      let verify = try finish(start(["verify", chainName(format)] + trust))
      XCTAssertEqual(verify.status, 3, "\(format): \(verify.stderr)")
      XCTAssertTrue(verify.stderr.contains("chunk 3"), "\(format): \(verify.stderr)")

      let before = try listing()
      let decode = try finish(start(["decode", chainName(format), "-o", "out.bin"] + trust))
      XCTAssertEqual(decode.status, 3, "\(format): \(decode.stderr)")
      XCTAssertTrue(decode.stderr.contains("chunk 3"), "\(format): \(decode.stderr)")
      XCTAssertEqual(try listing(), before, "\(format): decode left something behind")

      let untrusted = try chainfs("verify", chainName(format))
      XCTAssertEqual(untrusted.status, 3, "the recorded root still catches accidents")
    }
  }

  /// --force replaces an output only with proven bytes: a failed decode keeps the old one.
  func testFailedDecodeKeepsTheExistingOutput() throws {
    try writeRandomFile("clip.bin", count: 8 * 1024)
    let root = try encode("clip.bin", "--format", "archive", "--chunk-size", "1K")
    try flipBit(inChunk: 5, of: "clip.chain")
    try write(Array("keep me".utf8), to: "out.bin")

    let run = try chainfs(
      "decode", "clip.chain", "-o", "out.bin", "--force", "--root", root, "--chunk-size", "1K")
    XCTAssertEqual(run.status, 3, run.stderr)
    XCTAssertEqual(try contents("out.bin"), Array("keep me".utf8))
    XCTAssertEqual(try listing(), ["clip.bin", "clip.chain", "out.bin"])
  }

  func testExistingOutputNeedsForce() throws {
    let bytes = try writeRandomFile("clip.bin", count: 6000)
    let root = try encode("clip.bin", "--format", "archive", "--chunk-size", "1K")
    let trust = ["--root", root, "--chunk-size", "1K"]
    try write(Array("old".utf8), to: "out.bin")

    let refused = try finish(start(["decode", "clip.chain", "-o", "out.bin"] + trust))
    XCTAssertEqual(refused.status, 1, refused.stderr)
    XCTAssertTrue(refused.stderr.contains("--force"), refused.stderr)
    XCTAssertEqual(try contents("out.bin"), Array("old".utf8))

    let forced = try finish(start(["decode", "clip.chain", "-o", "out.bin", "--force"] + trust))
    XCTAssertEqual(forced.status, 0, forced.stderr)
    XCTAssertTrue(try contents("out.bin") == bytes)
    XCTAssertEqual(try listing(), ["clip.bin", "clip.chain", "out.bin"])
  }

  func testEncodeOverAnExistingChainNeedsForce() throws {
    let bytes = try writeRandomFile("clip.bin", count: 6000)
    for format in formats {
      _ = try encode("clip.bin", "--format", format, "--chunk-size", "1K")
      let refused = try chainfs("encode", "clip.bin", "--format", format, "--chunk-size", "2K")
      XCTAssertEqual(refused.status, 1, refused.stderr)
      XCTAssertEqual(refused.stdout, "")

      let forced = try chainfs(
        "encode", "clip.bin", "--format", format, "--chunk-size", "2K", "--force")
      XCTAssertEqual(forced.status, 0, forced.stderr)
      XCTAssertEqual(forced.stdout, definitionRoot(bytes, chunkSize: 2048) + "\n")
      let info = try infoJSON(chainName(format))
      XCTAssertEqual(info["chunk_size"] as? Int, 2048, format)
    }
    XCTAssertEqual(
      try listing("clip").filter { $0.hasSuffix(".rec") }.count, 3, "no 1K records left")
    XCTAssertEqual(try listing(), ["clip", "clip.bin", "clip.chain"])
  }

  func testInfoDescribesTheChainAsJSON() throws {
    let bytes = try writeRandomFile("clip.bin", count: 10 * 1024 + 100)
    for format in formats {
      let root = try encode("clip.bin", "--format", format, "--chunk-size", "1K")
      let info = try infoJSON(chainName(format))
      XCTAssertEqual(info["format"] as? String, format)
      XCTAssertEqual(info["name"] as? String, "clip.bin")
      XCTAssertEqual(info["size"] as? Int, bytes.count)
      XCTAssertEqual(info["chunk_size"] as? Int, 1024)
      XCTAssertEqual(info["chunks"] as? Int, 11)
      XCTAssertEqual(info["hash"] as? String, "sha256")
      XCTAssertEqual(info["root"] as? String, root)
    }
  }

  func testWrongChunkSizeWithRootIsAnIntegrityFailure() throws {
    try writeRandomFile("clip.bin", count: 5 * 4096)
    for format in formats {
      let root = try encode("clip.bin", "--format", format, "--chunk-size", "4K")
      for claimed in ["8K", "1K"] {
        let run = try chainfs("verify", chainName(format), "--root", root, "--chunk-size", claimed)
        XCTAssertEqual(run.status, 3, "\(format), \(claimed): \(run.stderr)")
        XCTAssertTrue(run.stderr.contains("chunk size of 4096 bytes"), run.stderr)
      }
      // A root given alone stands with the default 1 MiB chunk size.
      let alone = try chainfs("verify", chainName(format), "--root", root)
      XCTAssertEqual(alone.status, 3, alone.stderr)
      XCTAssertTrue(alone.stderr.contains("4096"), alone.stderr)

      let decode = try chainfs(
        "decode", chainName(format), "-o", "out.bin", "--root", root, "--chunk-size", "8K")
      XCTAssertEqual(decode.status, 3, decode.stderr)
      XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.bin")))
    }
  }

  func testWrongRootFailsAtChunkZero() throws {
    try writeRandomFile("clip.bin", count: 3000)
    let root = try encode("clip.bin", "--chunk-size", "1K")
    let wrong = String(root.dropLast()) + (root.hasSuffix("0") ? "1" : "0")
    let run = try chainfs("verify", "clip", "--root", wrong, "--chunk-size", "1K")
    XCTAssertEqual(run.status, 3, run.stderr)
    XCTAssertTrue(run.stderr.contains("chunk 0"), run.stderr)
  }

  /// Ctrl-C mid-encode must not leave a chain that looks whole, nor the work in progress.
  func testInterruptedEncodeLeavesNothing() throws {
    let input = path("big.bin")
    XCTAssertTrue(FileManager.default.createFile(atPath: input, contents: nil))
    XCTAssertEqual(truncate(input, 256 << 20), 0, "a sparse input: large, yet costs no disk")

    for (format, output) in [("folder", "big"), ("archive", "big.chain")] {
      let started = try start([
        "encode", "big.bin", "--format", format, "--chunk-size", "1K", "--jobs", "1", "-o", output,
      ])
      let process = started.process
      let partial = path(".\(output).partial-\(process.processIdentifier)")
      try waitUntil("\(format): the encode starts writing") {
        FileManager.default.fileExists(atPath: partial) || !process.isRunning
      }
      usleep(100_000)
      XCTAssertTrue(process.isRunning, "\(format): encode finished before the interrupt")
      process.interrupt()

      let run = try finish(started)
      XCTAssertTrue(run.exited, "\(format): killed by the signal instead of stopping")
      XCTAssertEqual(run.status, 128 + SIGINT, "\(format): exits as a shell reports Ctrl-C")
      XCTAssertEqual(run.stdout, "", "\(format): no root for an unfinished chain")
      XCTAssertTrue(run.stderr.contains("interrupted"), "\(format): \(run.stderr)")
      XCTAssertEqual(try listing(), ["big.bin"], format)
    }
  }

  private func waitUntil(_ what: String, timeout: TimeInterval = 30, _ done: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !done() {
      guard Date() < deadline else { throw Timeout(what: what) }
      usleep(2_000)
    }
  }

  private func infoJSON(_ source: String) throws -> [String: Any] {
    let run = try chainfs("info", source, "--json")
    XCTAssertEqual(run.status, 0, run.stderr)
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
    return try XCTUnwrap(object as? [String: Any], run.stdout)
  }

  /// Flips one bit in the middle of chunk `index`, in a folder's record file or at the
  /// chunk's place in an archive (after the header, whose length info reports).
  private func flipBit(inChunk index: Int, of source: String) throws {
    let info = try infoJSON(source)
    let chunkSize = try XCTUnwrap(info["chunk_size"] as? Int)
    let name: String
    let offset: Int
    if info["format"] as? String == "folder" {
      name = source + "/" + String(format: "%08d.rec", index)
      offset = chunkSize / 2
    } else {
      name = source
      let headerLength = try XCTUnwrap(info["header_length"] as? Int)
      offset = headerLength + index * (chunkSize + 32) + chunkSize / 2
    }
    var bytes = try contents(name)
    bytes[offset] ^= 0x04
    try write(bytes, to: name)
  }
}

private struct Timeout: Error, CustomStringConvertible {
  let what: String
  var description: String { "timed out waiting until \(what)" }
}
