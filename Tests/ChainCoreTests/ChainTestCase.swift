import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// Bytes from a fixed seed (SplitMix64), so that a failing case fails the same way on
/// every run and its input can be rebuilt from the seed alone.
func seededBytes(count: Int, seed: UInt64) -> [UInt8] {
  var state = seed
  var bytes = [UInt8](repeating: 0, count: count)
  bytes.withUnsafeMutableBytes { raw in
    var offset = 0
    while offset < count {
      state &+= 0x9e37_79b9_7f4a_7c15
      var word = state
      word = (word ^ (word >> 30)) &* 0xbf58_476d_1ce4_e5b9
      word = (word ^ (word >> 27)) &* 0x94d0_49bb_1331_11eb
      word ^= word >> 31
      withUnsafeBytes(of: word) { wordBytes in
        let length = min(8, count - offset)
        raw.baseAddress!.advanced(by: offset).copyMemory(
          from: wordBytes.baseAddress!, byteCount: length)
      }
      offset += 8
    }
  }
  return bytes
}

/// A chain on disk, with the facts a test needs to attack it.
struct StoredChain {
  let path: String
  let format: ChainEncoder.Format
  let original: [UInt8]
  let chunkSize: Int
  let header: ChainHeader

  var trust: TrustAnchor { TrustAnchor(root: header.root, chunkSize: chunkSize) }
  var geometry: ChainGeometry { header.geometry }
}

/// Gives each test a private folder, removed afterwards whatever the outcome.
class ChainTestCase: XCTestCase {
  private(set) var directory = ""

  override func setUpWithError() throws {
    try super.setUpWithError()
    let base = FileManager.default.temporaryDirectory.path
    directory = base + "/chaincore-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
    try super.tearDownWithError()
  }

  func path(_ name: String) -> String { directory + "/" + name }

  func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  func contents(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  }

  /// Writes `bytes` as `name` and encodes it into `chainName` (or the default name).
  func makeChain(
    _ bytes: [UInt8], chunkSize: Int, format: ChainEncoder.Format,
    method: ChainEncoder.Method = .backwardsSeeking, jobs: Int = 2,
    name: String = "clip.bin", chainName: String? = nil
  ) throws -> StoredChain {
    let input = path(name)
    if !FileManager.default.fileExists(atPath: input) { try write(bytes, to: input) }
    let output = path(chainName ?? (format == .archive ? "clip.chain" : "clip"))

    var encoder = ChainEncoder()
    encoder.chunkSize = chunkSize
    encoder.format = format
    encoder.method = method
    encoder.jobs = jobs
    let header = try encoder.encode(inputPath: input, outputPath: output)
    return StoredChain(
      path: output, format: format, original: bytes, chunkSize: chunkSize, header: header)
  }

  /// Verifies the chain at `path` against `trust`; the error, if any, is rethrown.
  func verify(_ path: String, trust: TrustAnchor, jobs: Int = 2, into output: String? = nil)
    throws
  {
    let source = try openChainSource(path)
    let verifier = try ChainVerifier(source: source, trust: trust, jobs: jobs)
    let file = try output.map { try SystemFile(path: $0, flags: O_WRONLY | O_CREAT | O_TRUNC) }
    try verifier.run(writingTo: file)
  }

  /// Fails unless verification throws an integrity error about `chunk` (nil: about no
  /// chunk in particular); returns the error so a caller can look closer.
  @discardableResult
  func assertIntegrityFailure(
    _ path: String, trust: TrustAnchor, chunk: Int?, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
  ) -> ChainError? {
    let error = assertRejected(path, trust: trust, message, file: file, line: line)
    if let error {
      XCTAssertEqual(
        error.chunk, chunk, "wrong chunk in: \(error). \(message)", file: file, line: line)
    }
    return error
  }

  /// Fails unless verification throws an integrity error, whichever chunk it names.
  @discardableResult
  func assertRejected(
    _ path: String, trust: TrustAnchor, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
  ) -> ChainError? {
    do {
      try verify(path, trust: trust)
      XCTFail("the chain verified, but should not have. \(message)", file: file, line: line)
    } catch let error as ChainError {
      XCTAssertTrue(
        error.isIntegrityFailure, "not an integrity failure: \(error). \(message)",
        file: file, line: line)
      return error
    } catch {
      XCTFail("unexpected error \(error). \(message)", file: file, line: line)
    }
    return nil
  }
}
