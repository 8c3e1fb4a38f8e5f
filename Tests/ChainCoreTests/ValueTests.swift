import ChainCore
import XCTest

final class ByteSizeTests: XCTestCase {
  func testParsesBytesAndBinarySuffixes() {
    let cases: [(String, Int)] = [
      ("0", 0), ("1", 1), ("4096", 4096), ("007", 7),
      ("64K", 64 * 1024), ("64k", 64 * 1024), ("1M", 1 << 20), ("1m", 1 << 20),
      ("2G", 2 << 30), ("3T", 3 << 40),
      ("10B", 10), ("10b", 10), ("1KB", 1024), ("1kb", 1024), ("5MB", 5 << 20),
      ("9223372036854775807", Int.max), ("8388607T", 8_388_607 << 40),
    ]
    for (text, expected) in cases {
      XCTAssertEqual(ByteSize.parse(text), expected, text)
    }
  }

  /// The parser strips an "i" between the unit letter and the B, so KiB and MiB, the units
  /// chainfs itself prints, are meant to be accepted back.
  func testParsesIecUnits() {
    XCTAssertEqual(ByteSize.parse("64KiB"), 64 * 1024)
    XCTAssertEqual(ByteSize.parse("1MiB"), 1 << 20)
    XCTAssertEqual(ByteSize.parse("1mib"), 1 << 20)
    XCTAssertEqual(ByteSize.parse("2GiB"), 2 << 30)
    XCTAssertNil(ByteSize.parse("1iMB"), "the i belongs after the unit letter")
  }

  func testRejectsWhatIsNotASize() {
    let cases = [
      "", " ", "K", "KB", "B", "1.5M", "-1", "+1", " 1", "1 ", "1 M", "1X", "1KX", "0x10",
      "1e3", "١٢", "9223372036854775808", "8589934592G", "8388608T", "1BB", "M1",
    ]
    for text in cases {
      XCTAssertNil(ByteSize.parse(text), text.debugDescription)
    }
  }

  func testFormatsForPeople() {
    XCTAssertEqual(ByteSize.format(0), "0 B")
    XCTAssertEqual(ByteSize.format(1023), "1023 B")
    XCTAssertEqual(ByteSize.format(1024), "1 KiB")
    XCTAssertEqual(ByteSize.format(1536), "1.5 KiB")
    XCTAssertEqual(ByteSize.format(64 << 20), "64 MiB")
    XCTAssertEqual(ByteSize.format(3 << 40), "3 TiB")
  }
}

final class DigestTests: XCTestCase {
  func testHexIsTheBytesInOrder() {
    let digest = Digest(bytes: (0..<32).map { UInt8($0 * 8) })
    XCTAssertEqual(
      digest.hex, "0008101820283038404850586068707880889098a0a8b0b8c0c8d0d8e0e8f0f8")
    XCTAssertEqual(digest.description, digest.hex)
  }

  func testHexRoundTrips() {
    for seed in 0..<20 as Range<UInt64> {
      let bytes = seededBytes(count: 32, seed: seed)
      let digest = Digest(bytes: bytes)
      XCTAssertEqual(Digest(hex: digest.hex), digest)
      XCTAssertEqual(Digest(hex: digest.hex.uppercased()), digest)
      XCTAssertEqual(Digest(hex: digest.hex)?.bytes, bytes)
    }
  }

  func testRejectsBadHex() {
    let good = String(repeating: "ab", count: 32)
    let short = String(good.dropLast())
    let cases: [String] = [
      "", short, good + "a", good + "ab", "0x" + String(good.dropFirst(2)), short + "g",
      " " + short, short + "\n", short + "-", String(short.dropLast()) + "é",
      String(repeating: "é", count: 32),
    ]
    for text in cases {
      XCTAssertNil(Digest(hex: text), text.debugDescription)
    }
    XCTAssertNotNil(Digest(hex: good))
  }
}

final class GeometryTests: XCTestCase {
  func testEmptyFileIsOneEmptyChunk() {
    let geometry = ChainGeometry(chunkSize: 1024, fileSize: 0)
    XCTAssertEqual(geometry.chunkCount, 1)
    XCTAssertEqual(geometry.lastChunk, 0)
    XCTAssertEqual(geometry.chunkLength(0), 0)
    XCTAssertEqual(geometry.recordLength(0), 0)
    XCTAssertEqual(geometry.recordsLength, 0)
    XCTAssertEqual(geometry.chunks(covering: 0, length: 0), 0...0)
  }

  func testChunkBoundaries() {
    // (file size, chunks, last chunk's length, all records' length) for 1 KiB chunks.
    let cases: [(Int, Int, Int, Int)] = [
      (1, 1, 1, 1),
      (1023, 1, 1023, 1023),
      (1024, 1, 1024, 1024),
      (1025, 2, 1, 1056 + 1),
      (2048, 2, 1024, 1056 + 1024),
      (5 * 1024 + 7, 6, 7, 5 * 1056 + 7),
    ]
    for (fileSize, chunks, lastLength, recordsLength) in cases {
      let geometry = ChainGeometry(chunkSize: 1024, fileSize: fileSize)
      XCTAssertEqual(geometry.chunkCount, chunks, "\(fileSize)")
      XCTAssertEqual(geometry.chunkLength(chunks - 1), lastLength, "\(fileSize)")
      XCTAssertEqual(geometry.recordLength(chunks - 1), lastLength, "\(fileSize)")
      XCTAssertEqual(geometry.recordsLength, recordsLength, "\(fileSize)")
      if chunks > 1 {
        XCTAssertEqual(geometry.chunkLength(0), 1024)
        XCTAssertEqual(geometry.recordLength(0), 1056)
        XCTAssertEqual(geometry.chunkOffset(chunks - 1), (chunks - 1) * 1024)
      }
    }
  }

  func testOneByteChunks() {
    let geometry = ChainGeometry(chunkSize: 1, fileSize: 5)
    XCTAssertEqual(geometry.chunkCount, 5)
    XCTAssertEqual(geometry.recordStride, 33)
    XCTAssertEqual(geometry.recordsLength, 4 * 33 + 1)
  }

  func testChunksCoveringARange() {
    let geometry = ChainGeometry(chunkSize: 100, fileSize: 1050)
    XCTAssertEqual(geometry.chunks(covering: 0, length: 1), 0...0)
    XCTAssertEqual(geometry.chunks(covering: 0, length: 100), 0...0)
    XCTAssertEqual(geometry.chunks(covering: 0, length: 101), 0...1)
    XCTAssertEqual(geometry.chunks(covering: 99, length: 2), 0...1)
    XCTAssertEqual(geometry.chunks(covering: 250, length: 0), 2...2)
    XCTAssertEqual(geometry.chunks(covering: 1000, length: 50), 10...10)
    XCTAssertEqual(geometry.chunks(covering: 0, length: 1050), 0...10)
    XCTAssertEqual(geometry.chunks(covering: 1049, length: 4096), 10...10, "clamped to the end")
    XCTAssertEqual(geometry.chunks(covering: 5000, length: 10), 10...10, "past the end")
  }

  func testRecordNamesSortInChainOrder() {
    XCTAssertEqual(FolderSource.recordName(0, chunkCount: 1), "00000000.rec")
    XCTAssertEqual(FolderSource.recordName(42, chunkCount: 100), "00000042.rec")
    XCTAssertEqual(FolderSource.recordName(3, chunkCount: 1_000_000_001), "0000000003.rec")
    let names = (0..<1200).map { FolderSource.recordName($0, chunkCount: 1200) }
    XCTAssertEqual(names, names.sorted())
  }
}
