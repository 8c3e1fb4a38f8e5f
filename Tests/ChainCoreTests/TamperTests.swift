import ChainCore
import Foundation
import XCTest

/// Each attack on stored records must fail as an integrity error that names the first
/// chunk the chain can no longer prove.
final class TamperTests: ChainTestCase {
  private let chunkSize = 512
  /// Seven full chunks and a short last one: records 0 to 6 carry links, record 7 not.
  private lazy var original = seededBytes(count: 7 * chunkSize + 200, seed: 60)

  private func chain(_ format: ChainEncoder.Format) throws -> StoredChain {
    try makeChain(original, chunkSize: chunkSize, format: format, chainName: "clip-\(format)")
  }

  /// Where record `index` lies: its own file, or its span of the archive.
  private func recordLocation(_ chain: StoredChain, _ index: Int) -> (path: String, offset: Int) {
    if chain.format == .folder {
      return (chain.path + "/" + String(format: "%08d.rec", index), 0)
    }
    return (chain.path, chain.header.encodedLength + index * (chunkSize + 32))
  }

  private func flipBit(_ chain: StoredChain, record index: Int, at offsetInRecord: Int) throws {
    let (path, start) = recordLocation(chain, index)
    var bytes = try contents(path)
    bytes[start + offsetInRecord] ^= 0x10
    try write(bytes, to: path)
  }

  func testFlippedDataBitNamesItsChunk() throws {
    try assertFlippedBitsNameTheirChunk([(0, 0), (3, 100), (6, chunkSize - 1), (7, 199)])
  }

  func testFlippedLinkBitNamesItsChunk() throws {
    try assertFlippedBitsNameTheirChunk([(0, chunkSize), (2, chunkSize + 17), (6, chunkSize + 31)])
  }

  /// For each (record, byte offset) and each format, a fresh chain with that one bit flipped
  /// must fail verification at exactly that record's chunk.
  private func assertFlippedBitsNameTheirChunk(_ places: [(record: Int, offset: Int)]) throws {
    for format in ChainEncoder.Format.allCases {
      for (index, offset) in places {
        let chain = try chain(format)
        try flipBit(chain, record: index, at: offset)
        assertIntegrityFailure(chain.path, trust: chain.trust, chunk: index, "\(format)")
        try FileManager.default.removeItem(atPath: chain.path)
      }
    }
  }

  /// No byte reaches the output before its record is proven: after a failure at chunk 3
  /// the output holds chunks 0 to 2 and nothing else.
  func testNothingPastTheFailedChunkIsWritten() throws {
    for format in ChainEncoder.Format.allCases {
      let chain = try chain(format)
      try flipBit(chain, record: 3, at: 5)
      let output = path("out-\(format)")
      XCTAssertThrowsError(try verify(chain.path, trust: chain.trust, jobs: 4, into: output))
      XCTAssertEqual(try contents(output), Array(original[0..<(3 * chunkSize)]), "\(format)")
    }
  }

  func testShortAndLongRecordFilesNameTheirChunk() throws {
    let chain = try chain(.folder)
    for (index, change) in [(2, -1), (2, 1), (7, -1), (7, 1), (4, -chunkSize - 32)] {
      let (path, _) = recordLocation(chain, index)
      let pristine = try contents(path)
      let changed = change < 0 ? Array(pristine.dropLast(-change)) : pristine + [0x55]
      try write(changed, to: path)

      let error = assertIntegrityFailure(chain.path, trust: chain.trust, chunk: index)
      if case .recordLength(_, let expected, let actual)? = error {
        XCTAssertEqual(expected, pristine.count)
        XCTAssertEqual(actual, changed.count)
      } else {
        XCTFail("record \(index) \(change): \(String(describing: error))")
      }
      try write(pristine, to: path)
    }
    try verify(chain.path, trust: chain.trust)
  }

  func testMissingRecordFileNamesItsChunk() throws {
    let chain = try chain(.folder)
    for index in [0, 4, 7] {
      let (path, _) = recordLocation(chain, index)
      let pristine = try contents(path)
      try FileManager.default.removeItem(atPath: path)
      let error = assertIntegrityFailure(chain.path, trust: chain.trust, chunk: index)
      guard case .missingRecord? = error else { return XCTFail("\(String(describing: error))") }
      try write(pristine, to: path)
    }
  }

  func testExtraRecordFileIsRejected() throws {
    let chain = try chain(.folder)
    for name in ["00000008.rec", "00000100.rec", "0000000003.rec", "junk.rec"] {
      try write([1, 2, 3], to: chain.path + "/" + name)
      let error = assertIntegrityFailure(chain.path, trust: chain.trust, chunk: nil, name)
      guard case .extraRecord? = error else {
        return XCTFail("\(name): \(String(describing: error))")
      }
      try FileManager.default.removeItem(atPath: chain.path + "/" + name)
    }
  }

  func testTrailingBytesAfterAnArchiveAreRejected() throws {
    for bytes in [[0], [UInt8](repeating: 0, count: 32), seededBytes(count: 544, seed: 61)] {
      let chain = try chain(.archive)
      try write(try contents(chain.path) + bytes, to: chain.path)
      let error = assertIntegrityFailure(chain.path, trust: chain.trust, chunk: nil)
      guard case .extraRecord? = error else { return XCTFail("\(String(describing: error))") }
      try FileManager.default.removeItem(atPath: chain.path)
    }
  }

  /// A manifest holds the header and nothing else; anything after it is not vouched for.
  func testTrailingBytesAfterAManifestAreRejected() throws {
    let chain = try chain(.folder)
    let manifest = chain.path + "/manifest"
    try write(try contents(manifest) + [0], to: manifest)
    XCTAssertThrowsError(try verify(chain.path, trust: chain.trust)) {
      guard case .corruptHeader? = $0 as? ChainError else { return XCTFail("\($0)") }
    }
  }

  func testTrailingBytesAfterAnEmptyArchiveAreRejected() throws {
    let chain = try makeChain([], chunkSize: chunkSize, format: .archive)
    try verify(chain.path, trust: chain.trust)
    try write(try contents(chain.path) + [0], to: chain.path)
    assertIntegrityFailure(chain.path, trust: chain.trust, chunk: nil)
  }

  func testSwappedRecordsAreRejectedAtTheFirstMisplacedOne() throws {
    for format in ChainEncoder.Format.allCases {
      for (first, second) in [(1, 2), (0, 5), (3, 6)] {
        let chain = try chain(format)
        try swapRecords(chain, first, second)
        assertIntegrityFailure(chain.path, trust: chain.trust, chunk: first, "\(format)")
        try FileManager.default.removeItem(atPath: chain.path)
      }
    }
  }

  /// Rotating records 2, 3 and 4 keeps every record intact and in the chain's set.
  func testRotatedFolderRecordsAreRejected() throws {
    let chain = try chain(.folder)
    let records = try (2...4).map { try contents(recordLocation(chain, $0).path) }
    for (index, record) in zip([3, 4, 2], records) {
      try write(record, to: recordLocation(chain, index).path)
    }
    assertIntegrityFailure(chain.path, trust: chain.trust, chunk: 2)
  }

  func testWrongRootFailsAtChunkZero() throws {
    for format in ChainEncoder.Format.allCases {
      let chain = try chain(format)
      var wrong = chain.header.root.bytes
      wrong[31] ^= 1
      let trust = TrustAnchor(root: Digest(bytes: wrong), chunkSize: chunkSize)
      let error = assertIntegrityFailure(chain.path, trust: trust, chunk: 0, "\(format)")
      guard case .hashMismatch(_, let expected, let actual)? = error else {
        return XCTFail("\(String(describing: error))")
      }
      XCTAssertEqual(expected.bytes, wrong)
      XCTAssertEqual(actual, chain.header.root)
    }
  }

  func testArchiveTruncatedAnywhereInItsRecordsNamesTheCutChunk() throws {
    let chain = try chain(.archive)
    let pristine = try contents(chain.path)
    let headerLength = chain.header.encodedLength
    let stride = chunkSize + 32
    for index in 0...7 {
      let recordStart = headerLength + index * stride
      let recordLength = index == 7 ? 200 : stride
      for cut in [0, 1, chunkSize / 2, recordLength - 1] where cut < recordLength {
        try write(Array(pristine[0..<(recordStart + cut)]), to: chain.path)
        let error = assertIntegrityFailure(
          chain.path, trust: chain.trust, chunk: index, "cut \(cut) into record \(index)")
        if case .recordLength(_, recordLength, cut)? = error {
        } else {
          XCTFail("cut \(cut) into record \(index): \(String(describing: error))")
        }
      }
    }
  }

  /// Too short to hold the magic, a file is no chain at all; once it holds the fixed
  /// fields, a short header is a damaged chain (docs/FORMAT.md, section 8).
  func testArchiveTruncatedInsideItsHeaderIsRejected() throws {
    let chain = try chain(.archive)
    let pristine = try contents(chain.path)
    for length in [0, 7, 8, 15, 16, 17, 64, chain.header.encodedLength - 1] {
      try write(Array(pristine[0..<length]), to: chain.path)
      XCTAssertThrowsError(try verify(chain.path, trust: chain.trust), "\(length) bytes") {
        let error = $0 as? ChainError
        if length < 8 {
          guard case .notAChain? = error else { return XCTFail("\(length): \($0)") }
        } else if length >= 16 {
          guard case .corruptHeader? = error else { return XCTFail("\(length): \($0)") }
        }
      }
    }
  }

  /// A record from another chain with the same chunk size fits in length but not in hash.
  func testRecordFromAnotherChainIsRejected() throws {
    let genuine = try chain(.folder)
    let other = try makeChain(
      seededBytes(count: original.count, seed: 62), chunkSize: chunkSize, format: .folder,
      name: "other.bin", chainName: "other")
    let (path, _) = recordLocation(genuine, 5)
    try write(try contents(recordLocation(other, 5).path), to: path)
    assertIntegrityFailure(genuine.path, trust: genuine.trust, chunk: 5)
  }

  private func swapRecords(_ chain: StoredChain, _ first: Int, _ second: Int) throws {
    if chain.format == .folder {
      let firstPath = recordLocation(chain, first).path
      let secondPath = recordLocation(chain, second).path
      let (a, b) = (try contents(firstPath), try contents(secondPath))
      try write(b, to: firstPath)
      return try write(a, to: secondPath)
    }
    var archive = try contents(chain.path)
    let a = recordLocation(chain, first).offset
    let b = recordLocation(chain, second).offset
    let length = chunkSize + 32
    let saved = Array(archive[a..<(a + length)])
    archive.replaceSubrange(a..<(a + length), with: archive[b..<(b + length)])
    archive.replaceSubrange(b..<(b + length), with: saved)
    try write(archive, to: chain.path)
  }
}
