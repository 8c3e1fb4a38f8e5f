import ChainCore
import Foundation
import XCTest

/// Byte offsets of the header fields, from the layout in ChainHeader.swift.
private enum Field {
  static let length = 12
  static let chunkSize = 16
  static let fileSize = 24
  static let chunkCount = 32
  static let nanoseconds = 48
  static let flags = 54
  static let name = 88
}

extension Array where Element == UInt8 {
  fileprivate func littleEndian(at offset: Int, width: Int) -> UInt64 {
    (0..<width).reversed().reduce(0) { $0 << 8 | UInt64(self[offset + $1]) }
  }

  fileprivate mutating func setLittleEndian(_ value: UInt64, at offset: Int, width: Int) {
    for index in 0..<width {
      self[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
    }
  }

  /// Recomputes the trailing checksum, as an attacker who edits a header would.
  fileprivate func resealed() -> [UInt8] {
    let body = Array(self[0..<(count - 32)])
    return body + ReferenceSHA256.hash(body)
  }
}

final class HeaderTests: ChainTestCase {
  private func sampleHeader(name: String = "clip.bin", fileSize: Int = 5000) -> ChainHeader {
    ChainHeader(
      geometry: ChainGeometry(chunkSize: 1024, fileSize: fileSize), name: name,
      modificationSeconds: 1_700_000_000, modificationNanoseconds: 123_456_789,
      root: Digest(bytes: seededBytes(count: 32, seed: 50)))
  }

  func testRoundTripsThroughItsBytes() throws {
    let names = ["a", "clip.bin", "seven77", "eight888", "nine99999", "café ▶ take 2.mp4", "..."]
    for name in names {
      for seconds in [0, -1, Int64.max, Int64.min] as [Int64] {
        var header = sampleHeader(name: name)
        header.modificationSeconds = seconds
        header.modificationNanoseconds = 999_999_999
        let bytes = header.encoded()
        XCTAssertEqual(bytes.count % 8, 0, name)
        XCTAssertEqual(bytes.count, header.encodedLength, name)
        XCTAssertEqual(try ChainHeader(decoding: bytes, path: "t"), header, name)
      }
    }
  }

  /// The layout is a published format, so the fields are checked where the format puts
  /// them rather than only through the library's own decoder.
  func testFieldsSitWhereTheFormatSaysAndTheChecksumCoversThem() {
    let header = sampleHeader(name: "clip.bin", fileSize: 5000)
    let bytes = header.encoded()

    XCTAssertEqual(Array(bytes[0..<8]), Array("CHAINFS".utf8) + [0])
    XCTAssertEqual(bytes.littleEndian(at: 8, width: 2), 1, "version")
    XCTAssertEqual(bytes.littleEndian(at: 10, width: 2), 1, "SHA-256")
    XCTAssertEqual(bytes.littleEndian(at: Field.length, width: 4), 88 + 8 + 32)
    XCTAssertEqual(bytes.littleEndian(at: Field.chunkSize, width: 8), 1024)
    XCTAssertEqual(bytes.littleEndian(at: Field.fileSize, width: 8), 5000)
    XCTAssertEqual(bytes.littleEndian(at: Field.chunkCount, width: 8), 5)
    XCTAssertEqual(bytes.littleEndian(at: 40, width: 8), 1_700_000_000)
    XCTAssertEqual(bytes.littleEndian(at: Field.nanoseconds, width: 4), 123_456_789)
    XCTAssertEqual(bytes.littleEndian(at: 52, width: 2), 8, "name length")
    XCTAssertEqual(Array(bytes[56..<88]), header.root.bytes)
    XCTAssertEqual(Array(bytes[Field.name..<96]), Array("clip.bin".utf8))
    XCTAssertEqual(Array(bytes[96...]), ReferenceSHA256.hash(Array(bytes[0..<96])))
  }

  func testEverySingleByteCorruptionIsRejected() throws {
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(
        seededBytes(count: 3 * 64 + 10, seed: 51), chunkSize: 64, format: format,
        chainName: "clip-\(format)")
      let headerPath = format == .archive ? chain.path : chain.path + "/manifest"
      let pristine = try contents(headerPath)
      defer { try? write(pristine, to: headerPath) }

      for offset in 0..<chain.header.encodedLength {
        for mask in [0x01, 0x80, 0xff] as [UInt8] {
          var bytes = pristine
          bytes[offset] ^= mask
          try write(bytes, to: headerPath)
          let label = "\(format): byte \(offset) ^ \(mask)"
          do {
            try verify(chain.path, trust: chain.trust)
            XCTFail("accepted: \(label)")
          } catch let error as ChainError {
            // A broken magic does not look like a chain at all; past it, the header
            // is a chain's and damage to it is an integrity failure.
            if offset < 8 {
              if case .notAChain = error {} else { XCTFail("\(label): \(error)") }
            } else {
              XCTAssertTrue(error.isIntegrityFailure, "\(label): \(error)")
            }
          }
        }
      }
    }
  }

  /// A resealed header can say anything; the trusted root and chunk size must still pin
  /// how many bytes the chain holds.
  func testResealedHeaderClaimingOtherFileSizesIsRejected() throws {
    let chunkSize = 256
    let bytes = seededBytes(count: 6 * chunkSize + 100, seed: 52)
    let claims = [
      bytes.count - 1, bytes.count + 1, 6 * chunkSize, 5 * chunkSize + 100, chunkSize,
      chunkSize + 32, 0, bytes.count + chunkSize,
    ]
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(bytes, chunkSize: chunkSize, format: format)
      for fileSize in claims {
        var header = chain.header
        header.geometry = ChainGeometry(chunkSize: chunkSize, fileSize: fileSize)
        try replaceHeader(of: chain, with: header.encoded())
        assertRejected(chain.path, trust: chain.trust, "\(format), claims \(fileSize)")
      }
    }
  }

  func testResealedHeaderClaimingAnotherChunkSizeIsRejected() throws {
    let bytes = seededBytes(count: 4000, seed: 53)
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(bytes, chunkSize: 1000, format: format)
      for claimed in [500, 999, 1001, 2000, 4000] {
        var header = chain.header
        header.geometry = ChainGeometry(chunkSize: claimed, fileSize: bytes.count)
        try replaceHeader(of: chain, with: header.encoded())
        XCTAssertThrowsError(try verify(chain.path, trust: chain.trust)) { error in
          guard case .chunkSizeMismatch(claimed, 1000)? = error as? ChainError else {
            return XCTFail("\(format), \(claimed): \(error)")
          }
        }
      }
    }
  }

  /// Record 0 is a chunk and a digest; claimed as the only chunk of a file of
  /// CHUNK + 32 bytes it hashes to the same root. Only the trusted chunk size stops it.
  func testRecordZeroPassedOffAsAWholeFileNeedsTheTrustedChunkSize() throws {
    let chunkSize = 1024
    let bytes = seededBytes(count: 3 * chunkSize + 9, seed: 54)
    let reference = ReferenceChain(file: bytes, chunkSize: chunkSize)
    let root = Digest(bytes: reference.root)
    let forged = ChainHeader(
      geometry: ChainGeometry(chunkSize: chunkSize + 32, fileSize: chunkSize + 32),
      name: "clip.bin", modificationSeconds: 0, modificationNanoseconds: 0, root: root)
    XCTAssertEqual(forged.chunkCount, 1)
    try write(forged.encoded() + reference.records[0], to: path("forged.chain"))
    try FileManager.default.createDirectory(
      atPath: path("forged"), withIntermediateDirectories: false)
    try write(forged.encoded(), to: path("forged/manifest"))
    try write(reference.records[0], to: path("forged/00000000.rec"))

    for forgery in [path("forged.chain"), path("forged")] {
      // The attack is real: trusting the root alone with the forger's chunk size, the
      // forgery verifies and yields record 0 as if it were the file.
      let output = path("yield")
      try verify(forgery, trust: TrustAnchor(root: root, chunkSize: chunkSize + 32), into: output)
      XCTAssertEqual(try contents(output), reference.records[0])

      XCTAssertThrowsError(
        try verify(forgery, trust: TrustAnchor(root: root, chunkSize: chunkSize))
      ) {
        guard case .chunkSizeMismatch(chunkSize + 32, chunkSize)? = $0 as? ChainError else {
          return XCTFail("\(forgery): \($0)")
        }
      }
      // A root with no chunk size means the default chunk size, never the claimed one.
      XCTAssertThrowsError(try verify(forgery, trust: TrustAnchor(root: root))) {
        guard
          case .chunkSizeMismatch(chunkSize + 32, TrustAnchor.defaultChunkSize)? =
            $0 as? ChainError
        else { return XCTFail("\(forgery): \($0)") }
      }
    }
  }

  func testNamesThatEscapeTheFolderAreRejectedDespiteAValidChecksum() {
    for name in [
      "a/b", "/", "/etc/passwd", "..", ".", "../clip", "tab\there", "nul\u{0}x", "del\u{7f}",
    ] {
      let bytes = sampleHeader(name: name).encoded()
      XCTAssertThrowsError(try ChainHeader(decoding: bytes, path: "t"), name.debugDescription) {
        guard case .corruptHeader? = $0 as? ChainError else { return XCTFail("\(name): \($0)") }
      }
    }
  }

  /// Each field that the checksum cannot vouch for is checked for sense on its own.
  func testInconsistentFieldsAreRejectedDespiteAValidChecksum() {
    let pristine = sampleHeader().encoded()
    // (what, offset, width, value): sampleHeader is 5000 bytes in 5 chunks of 1 KiB.
    let edits: [(String, Int, Int, UInt64)] = [
      ("version 2", 8, 2, 2),
      ("hash function 2", 10, 2, 2),
      ("chunk size 0", Field.chunkSize, 8, 0),
      ("chunk size 1 GiB + 1", Field.chunkSize, 8, (1 << 30) + 1),
      ("file size 2^62 + 1", Field.fileSize, 8, (1 << 62) + 1),
      ("chunk count 4", Field.chunkCount, 8, 4),
      ("chunk count 6", Field.chunkCount, 8, 6),
      ("nanoseconds 10^9", Field.nanoseconds, 4, 1_000_000_000),
      ("name length 7", 52, 2, 7),
      ("name length 0", 52, 2, 0),
      ("flags", Field.flags, 2, 1),
      ("a name byte that is not UTF-8", Field.name, 1, 0xff),
    ]
    for (label, offset, width, value) in edits {
      var bytes = pristine
      bytes.setLittleEndian(value, at: offset, width: width)
      XCTAssertThrowsError(try ChainHeader(decoding: bytes.resealed(), path: "t"), label) {
        guard case .corruptHeader? = $0 as? ChainError else { return XCTFail("\(label): \($0)") }
      }
    }
  }

  /// Each record carries 32 bytes of link, so small chunks make the records far larger
  /// than the file. A header whose records would pass 2^62 bytes is refused, so that no
  /// offset computed from an accepted header can overflow.
  func testRecordsBeyondTheLimitAreRejected() throws {
    for chunkSize in [1, 32, 1 << 20, 1 << 30] {
      let header = try decodeResealed(chunkSize: chunkSize, fileSize: ChainGeometry.maximumFileSize)
      XCTAssertNil(header, "chunk size \(chunkSize) at the largest file size")
    }
    XCTAssertNil(try decodeResealed(chunkSize: 1, fileSize: 1 << 58), "33 * 2^58 bytes of records")

    let small = try XCTUnwrap(try decodeResealed(chunkSize: 1, fileSize: 1 << 56))
    XCTAssertEqual(small.geometry.recordsLength, ((1 << 56) - 1) * 33 + 1)
    let large = try XCTUnwrap(try decodeResealed(chunkSize: 1 << 20, fileSize: 1 << 61))
    XCTAssertEqual(large.geometry.recordsLength, ((1 << 41) - 1) * ((1 << 20) + 32) + (1 << 20))
  }

  /// Decodes sampleHeader given another geometry, with a consistent chunk count and a
  /// valid checksum; nil when the parser refuses it.
  private func decodeResealed(chunkSize: Int, fileSize: Int) throws -> ChainHeader? {
    var bytes = sampleHeader().encoded()
    bytes.setLittleEndian(UInt64(chunkSize), at: Field.chunkSize, width: 8)
    bytes.setLittleEndian(UInt64(fileSize), at: Field.fileSize, width: 8)
    let chunks = fileSize == 0 ? 1 : (fileSize - 1) / chunkSize + 1
    bytes.setLittleEndian(UInt64(chunks), at: Field.chunkCount, width: 8)
    do {
      return try ChainHeader(decoding: bytes.resealed(), path: "t")
    } catch ChainError.corruptHeader {
      return nil
    }
  }

  func testNonZeroPaddingIsRejected() {
    // "seven77" leaves one byte of padding before the checksum.
    var bytes = sampleHeader(name: "seven77").encoded()
    XCTAssertEqual(bytes[Field.name + 7], 0)
    bytes[Field.name + 7] = 1
    XCTAssertThrowsError(try ChainHeader(decoding: bytes.resealed(), path: "t"))
  }

  func testTruncatedHeadersAreRejected() {
    let bytes = sampleHeader().encoded()
    for length in 0..<bytes.count {
      XCTAssertThrowsError(
        try ChainHeader(decoding: Array(bytes[0..<length]), path: "t"), "\(length)")
    }
  }

  func testDeclaredLengthOutOfRangeIsRejected() {
    var bytes = sampleHeader().encoded()
    for length in [0, 127, 8193, UInt64(UInt32.max)] {
      bytes.setLittleEndian(length, at: Field.length, width: 4)
      XCTAssertThrowsError(try ChainHeader.declaredLength(prefix: bytes, path: "t"), "\(length)")
    }
  }

  func testTrustAnchorPinsTheChunkSize() throws {
    let header = sampleHeader()
    let root = Digest(bytes: [UInt8](repeating: 7, count: 32))

    XCTAssertEqual(try TrustAnchor().root(for: header), header.root)
    XCTAssertEqual(try TrustAnchor(chunkSize: 1024).root(for: header), header.root)
    XCTAssertEqual(try TrustAnchor(root: root, chunkSize: 1024).root(for: header), root)
    XCTAssertThrowsError(try TrustAnchor(chunkSize: 2048).root(for: header))
    XCTAssertThrowsError(try TrustAnchor(root: root).root(for: header), "1 MiB assumed")
    XCTAssertFalse(TrustAnchor(chunkSize: 1024).isTrusted)
    XCTAssertTrue(TrustAnchor(root: root).isTrusted)
  }

  private func replaceHeader(of chain: StoredChain, with header: [UInt8]) throws {
    if chain.format == .folder {
      return try write(header, to: chain.path + "/manifest")
    }
    var archive = try contents(chain.path)
    XCTAssertEqual(header.count, chain.header.encodedLength, "the name did not change")
    archive.replaceSubrange(0..<header.count, with: header)
    try write(archive, to: chain.path)
  }
}
