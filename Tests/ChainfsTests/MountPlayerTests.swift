import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// A real player on the bundled sample video, through the mount: what chainfs is for.
final class MountPlayerTests: MountTestCase {
  private var original = ""
  private var served = ""

  /// The sample, encoded in 64K chunks and mounted with a small cache and readahead, so
  /// that the player's seeks reach the driver.
  override func setUpWithError() throws {
    try super.setUpWithError()
    original = repositoryRoot + "/samples/sample.mp4"
    try FileManager.default.copyItem(atPath: original, toPath: path("sample.mp4"))
    let root = try encode("sample.mp4", to: "sample.chain", chunkSize: "64K")
    let options = ["-o", "cache_size=256K,readahead=2"]
    served = try mountFile(
      "sample.mp4", from: "sample.chain", at: makeMountPoint(), trust(root, "64K") + options)
  }

  private func ffmpeg(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line)
    throws -> String
  {
    let quiet = ["-nostdin", "-v", "error"]
    let run = try finish(start(program: program("ffmpeg"), quiet + arguments))
    XCTAssertEqual(run.status, 0, "ffmpeg \(arguments): \(run.stderr)", file: file, line: line)
    XCTAssertEqual(run.stderr, "", "ffmpeg \(arguments) complained", file: file, line: line)
    return run.stdout
  }

  /// A player must read the index at the very end before the frames at the start, so the
  /// sample tests seeking reads only if its top-level moov atom follows its mdat.
  func testSampleKeepsItsIndexAtTheEnd() throws {
    let atoms = topLevelAtoms(try contents("sample.mp4"))
    let mediaData = try XCTUnwrap(atoms.firstIndex(of: "mdat"), "no mdat in \(atoms)")
    let index = try XCTUnwrap(atoms.firstIndex(of: "moov"), "no moov in \(atoms)")
    XCTAssertGreaterThan(index, mediaData, "\(atoms)")
  }

  /// The types of the atoms at the top of an MP4 file, in file order. Each starts with
  /// its 32-bit big-endian size (1: a 64-bit size follows the type) and its type.
  private func topLevelAtoms(_ bytes: [UInt8]) -> [String] {
    func bigEndian(_ start: Int, _ count: Int) -> Int {
      bytes[start..<(start + count)].reduce(0) { $0 << 8 | Int($1) }
    }
    var atoms: [String] = []
    var offset = 0
    while offset + 8 <= bytes.count {
      var size = bigEndian(offset, 4)
      if size == 1, offset + 16 <= bytes.count { size = bigEndian(offset + 8, 8) }
      if size == 0 { size = bytes.count - offset }
      atoms.append(String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self))
      guard size >= 8 else { break }
      offset += size
    }
    return atoms
  }

  func testFfmpegDecodesTheSameFrames() throws {
    let expected = try ffmpeg(["-i", original, "-f", "framemd5", "-"])
    let decoded = try ffmpeg(["-i", served, "-f", "framemd5", "-"])

    XCTAssertGreaterThan(frameCount(expected), 100)
    XCTAssertEqual(decoded, expected)
  }

  func testFfmpegSeeksIntoTheMiddle() throws {
    let seek = ["-ss", "6", "-i"]
    let frames = ["-frames:v", "10", "-f", "framemd5", "-"]
    let expected = try ffmpeg(seek + [original] + frames)
    let decoded = try ffmpeg(seek + [served] + frames)

    XCTAssertGreaterThanOrEqual(frameCount(expected), 10)
    XCTAssertEqual(decoded, expected)
    _ = try ffmpeg(seek + [served, "-frames:v", "10", "-f", "null", "-"])
  }

  /// Lines of framemd5 output that describe a frame rather than the streams.
  private func frameCount(_ framemd5: String) -> Int {
    framemd5.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
  }

  func testFfprobeReadsTheContainer() throws {
    let show = ["-v", "error", "-show_entries", "format=duration,size:stream=codec_name,nb_frames"]
    let probe = try program("ffprobe")

    let expected = try finish(start(program: probe, show + [original]))
    let probed = try finish(start(program: probe, show + [served]))
    XCTAssertEqual(probed.status, 0, probed.stderr)
    XCTAssertEqual(probed.stderr, "")
    XCTAssertTrue(probed.stdout.contains("duration=12"), probed.stdout)
    XCTAssertEqual(probed.stdout, expected.stdout)
  }
}
