import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

final class ReferenceHashTests: XCTestCase {
  /// Known answers from FIPS 180-2 appendix B, so the reference is itself pinned.
  func testReferenceMatchesPublishedDigests() {
    let cases = [
      ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
      ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
      (
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
      ),
    ]
    for (message, expected) in cases {
      let digest = ReferenceSHA256.hash(Array(message.utf8))
      XCTAssertEqual(digest.map { String($0, radix: 16).leftPadded(to: 2) }.joined(), expected)
      XCTAssertEqual(SHA256.hash(Array(message.utf8)).hex, expected, "library, '\(message)'")
    }
  }

  /// Every length around the padding boundaries (55, 56, 63, 64 and their next block).
  func testLibraryAgreesWithReferenceAtEveryPaddingLength() {
    let bytes = seededBytes(count: 200, seed: 1)
    for length in 0...bytes.count {
      let message = Array(bytes[0..<length])
      XCTAssertEqual(SHA256.hash(message).bytes, ReferenceSHA256.hash(message), "length \(length)")
    }
  }

  /// The hasher is reused across chunks, so a reset must forget everything before it.
  func testIncrementalHasherMatchesOneShotAfterReset() {
    let bytes = seededBytes(count: 300, seed: 2)
    let hasher = SHA256()
    hasher.update(bytes: [1, 2, 3])
    hasher.reset()
    bytes[0..<100].withUnsafeBytes { hasher.update($0) }
    bytes[100...].withUnsafeBytes { hasher.update($0) }
    XCTAssertEqual(hasher.finish().bytes, ReferenceSHA256.hash(bytes))
  }
}

extension SHA256 {
  fileprivate func update(bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
}

final class EncoderTests: ChainTestCase {
  /// File sizes that sit on each side of every chunk boundary the encoder handles.
  private func boundarySizes(_ chunkSize: Int) -> [Int] {
    [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 5 * chunkSize + 7]
  }

  private func assertMatchesReference(
    _ bytes: [UInt8], chunkSize: Int, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let reference = ReferenceChain(file: bytes, chunkSize: chunkSize)
    for format in ChainEncoder.Format.allCases {
      for method in ChainEncoder.Method.allCases {
        let label = "\(bytes.count) bytes, chunk \(chunkSize), \(format), \(method)"
        let chain = try makeChain(
          bytes, chunkSize: chunkSize, format: format, method: method,
          chainName: "\(format)-\(method.rawValue)-\(chunkSize)-\(bytes.count)")
        XCTAssertEqual(chain.header.root.bytes, reference.root, label, file: file, line: line)
        XCTAssertEqual(
          try storedRecords(chain), reference.records, label, file: file, line: line)
      }
    }
  }

  /// The records as they lie on disk, read without the library's sources.
  private func storedRecords(_ chain: StoredChain) throws -> [[UInt8]] {
    let geometry = chain.geometry
    if chain.format == .folder {
      return try (0..<geometry.chunkCount).map {
        try contents(chain.path + "/" + String(format: "%08d.rec", $0))
      }
    }
    let archive = try contents(chain.path)
    var offset = chain.header.encodedLength
    return (0..<geometry.chunkCount).map { index in
      let length = index == geometry.lastChunk ? archive.count - offset : chain.chunkSize + 32
      defer { offset += length }
      return Array(archive[offset..<(offset + length)])
    }
  }

  func testRootsMatchReferenceAtChunkBoundaries() throws {
    let largest = 5 * (1 << 20) + 7
    let bytes = seededBytes(count: largest, seed: 3)
    for chunkSize in [1 << 10, 4 << 10, 64 << 10, 1 << 20] {
      for size in boundarySizes(chunkSize) {
        try assertMatchesReference(Array(bytes[0..<size]), chunkSize: chunkSize)
        try FileManager.default.removeItem(atPath: path("clip.bin"))
      }
    }
  }

  func testTinyChunkSizesMatchReference() throws {
    let bytes = seededBytes(count: 40, seed: 4)
    for chunkSize in [1, 3] {
      for size in [0, 1, 2, 3, 4, 7, 40] {
        try assertMatchesReference(Array(bytes[0..<size]), chunkSize: chunkSize)
        try FileManager.default.removeItem(atPath: path("clip.bin"))
      }
    }
  }

  func testEmptyFileIsOneEmptyChunk() throws {
    let chain = try makeChain([], chunkSize: 1024, format: .folder)
    XCTAssertEqual(chain.header.chunkCount, 1)
    XCTAssertEqual(try contents(chain.path + "/00000000.rec"), [])
    XCTAssertEqual(
      chain.header.root.hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  }

  /// The two methods and any number of jobs are promised to give the same bytes.
  func testMethodsAndJobCountsWriteIdenticalArchives() throws {
    let bytes = seededBytes(count: 37 * 1024 + 5, seed: 5)
    var archives: [String: [UInt8]] = [:]
    for method in ChainEncoder.Method.allCases {
      for jobs in [1, 3] {
        let name = "\(method.rawValue)-\(jobs).chain"
        let chain = try makeChain(
          bytes, chunkSize: 1024, format: .archive, method: method, jobs: jobs, chainName: name)
        archives[name] = try contents(chain.path)
      }
    }

    let first = archives.values.first!
    // A header of 88 fixed bytes and the 8-byte name "clip.bin", then its checksum.
    XCTAssertEqual(first.count, 88 + 8 + 32 + 37 * 1056 + 5)
    for (name, archive) in archives {
      XCTAssertTrue(archive == first, "\(name) differs")
    }
  }

  func testMethodsAndJobCountsWriteIdenticalFolders() throws {
    let bytes = seededBytes(count: 37 * 1024 + 5, seed: 6)
    var folders: [String: [String: [UInt8]]] = [:]
    for method in ChainEncoder.Method.allCases {
      for jobs in [1, 3] {
        let name = "\(method.rawValue)-\(jobs)"
        let chain = try makeChain(
          bytes, chunkSize: 1024, format: .folder, method: method, jobs: jobs, chainName: name)
        let entries = try FileManager.default.contentsOfDirectory(atPath: chain.path)
        folders[name] = try Dictionary(
          uniqueKeysWithValues: entries.map { ($0, try contents(chain.path + "/" + $0)) })
      }
    }

    let first = folders.values.first!
    XCTAssertEqual(first.count, 38 + 1, "38 records and a manifest")
    XCTAssertNotNil(first["manifest"])
    for (name, folder) in folders {
      XCTAssertEqual(Set(folder.keys), Set(first.keys), "\(name): other file names")
      for (entry, bytes) in folder where bytes != first[entry] {
        XCTFail("\(name)/\(entry) differs")
      }
    }
  }

  func testBothFormatsRoundTripToTheOriginalBytes() throws {
    for (index, size) in [0, 1, 4095, 4096, 4097, 9 * 4096 + 333].enumerated() {
      let bytes = seededBytes(count: size, seed: 10 + UInt64(index))
      let reference = ReferenceChain(file: bytes, chunkSize: 4096)
      let trust = TrustAnchor(root: Digest(bytes: reference.root), chunkSize: 4096)
      for format in ChainEncoder.Format.allCases {
        let chain = try makeChain(
          bytes, chunkSize: 4096, format: format, name: "in-\(size)", chainName: "\(format)-\(size)"
        )
        let output = path("out-\(format)-\(size)")
        try verify(chain.path, trust: trust, jobs: 3, into: output)
        XCTAssertTrue(try contents(output) == bytes, "\(format), \(size) bytes")
      }
    }
  }

  /// O_DIRECT reads land at aligned offsets and end past the record, which the sources
  /// must trim; the last record of an odd-sized file ends off any alignment.
  func testDirectReadsRoundTrip() throws {
    let bytes = seededBytes(count: 3 * 4096 + 1000, seed: 20)
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(bytes, chunkSize: 4096, format: format)
      let source = try openChainSource(chain.path, options: SourceOptions(directIO: true))
      let output = path("direct-\(format)")
      let file = try SystemFile(path: output, flags: O_WRONLY | O_CREAT | O_TRUNC)
      try ChainVerifier(source: source, trust: chain.trust, jobs: 2).run(writingTo: file)
      XCTAssertTrue(try contents(output) == bytes, "\(format)")
    }
  }

  /// A slice of a record is the same bytes as the whole record holds there, read plainly or
  /// directly, from either layout; a slice past a record cut short fails as `recordLength`.
  func testRecordSlicesMatchWholeRecords() throws {
    let bytes = seededBytes(count: 5 * 8192 + 3000, seed: 21)
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(bytes, chunkSize: 8192, format: format)
      for directIO in [false, true] {
        let source = try openChainSource(chain.path, options: SourceOptions(directIO: directIO))
        let whole = source.makeRecordBuffer()
        let part = source.makeRecordBuffer()
        for (index, slice) in [(0, 0..<8192), (2, 4095..<8224), (5, 1000..<3000)] {
          let record = try source.readRecord(index, into: whole)
          let sliced = try source.readRecord(index, slice: slice, into: part)
          XCTAssertEqual(Array(sliced), Array(record[slice]), "\(format), chunk \(index)")
        }
        XCTAssertThrowsError(try source.readRecord(5, slice: 2990..<3010, into: part)) { error in
          guard case ChainError.recordLength(chunk: 5, _, _) = error else {
            return XCTFail("\(format): expected a short record, got \(error)")
          }
        }
      }
    }
  }

  /// Forgetting to reset the link between files, or a stale buffer slot, shows up as
  /// two encodings of different files sharing records.
  func testEncoderIsReusableAcrossFiles() throws {
    var encoder = ChainEncoder()
    encoder.chunkSize = 100
    encoder.format = .archive
    for seed in 30..<33 as Range<UInt64> {
      let bytes = seededBytes(count: 1234, seed: seed)
      try write(bytes, to: path("in-\(seed)"))
      let header = try encoder.encode(
        inputPath: path("in-\(seed)"), outputPath: path("\(seed).chain"))
      XCTAssertEqual(header.root.bytes, ReferenceChain(file: bytes, chunkSize: 100).root)
    }
  }

  func testRefusesToReplaceWithoutForce() throws {
    let bytes = seededBytes(count: 5000, seed: 40)
    for format in ChainEncoder.Format.allCases {
      let chain = try makeChain(bytes, chunkSize: 1024, format: format)
      XCTAssertThrowsError(try makeChain(bytes, chunkSize: 1024, format: format)) { error in
        guard case .outputExists(let path)? = error as? ChainError else {
          return XCTFail("unexpected error \(error)")
        }
        XCTAssertEqual(path, chain.path)
      }

      var encoder = ChainEncoder()
      encoder.chunkSize = 2048
      encoder.format = format
      encoder.force = true
      let header = try encoder.encode(inputPath: path("clip.bin"), outputPath: chain.path)
      XCTAssertEqual(try openChainSource(chain.path).header, header)
      XCTAssertEqual(header.chunkSize, 2048)
    }
  }

  func testRejectsWhatCannotBeEncoded() throws {
    var encoder = ChainEncoder()
    XCTAssertThrowsError(try encoder.encode(inputPath: directory, outputPath: path("x")))
    XCTAssertThrowsError(try encoder.encode(inputPath: path("absent"), outputPath: path("x")))

    try write([1, 2, 3], to: path("small"))
    encoder.chunkSize = ChainGeometry.maximumChunkSize + 1
    XCTAssertThrowsError(try encoder.encode(inputPath: path("small"), outputPath: path("x")))
    XCTAssertFalse(FileManager.default.fileExists(atPath: path("x")))
  }

  func testDefaultOutputPaths() {
    let cases: [(String, ChainEncoder.Format, String)] = [
      ("movie.mp4", .folder, "movie"),
      ("movie.mp4", .archive, "movie.chain"),
      ("movie", .folder, "movie.chunks"),
      ("movie", .archive, "movie.chain"),
      ("dir.v2/movie", .folder, "dir.v2/movie.chunks"),
      ("/a/b/take.1.mkv", .archive, "/a/b/take.1.chain"),
      (".hidden", .folder, ".hidden.chunks"),
    ]
    for (input, format, expected) in cases {
      XCTAssertEqual(ChainEncoder.defaultOutputPath(for: input, format: format), expected, input)
    }
  }
}

/// The vectors published in docs/FORMAT.md section 9, computed there by a script written
/// from the document alone: they pin the format for any other implementation.
final class FormatVectorTests: ChainTestCase {
  /// The document's pattern input: byte i is i mod 251.
  private func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }

  func testPatternRoots() throws {
    let vectors: [(Int, Int, String)] = [
      (3000, 1024, "9064778805feb2aad4ce28603dcedc6f9ecc9d6364c487fb286d987477e2a15f"),
      (3000, 1000, "8d75bc8f8bf5504427717f301b9bff15f8db05be633eec219900d4423e1682ce"),
      (1023, 1024, "1c5e88a585b61754df6137d66632a7348557a88358afc401b0a0a4fc427104a9"),
      (1024, 1024, "2bce1ba628720664be4b9fdd77aae0678e5f0f3f02fc6ff641ec879094f6a404"),
      (1025, 1024, "8d6182731c09c6d4a988ea025c1ab8e2de035701d433ab9565cf4142f409d03e"),
      (2048, 1024, "c4362a9516755351ae985fe1f39d2a0cd2e2f5a430f477a909f832db6968edf3"),
      (2049, 1024, "77912db9dae907bc52713a0043fd4e61f98f0eb19619565e5e8fd39d56c0657c"),
    ]
    for (size, chunkSize, root) in vectors {
      let chain = try makeChain(
        pattern(size), chunkSize: chunkSize, format: .archive, name: "p-\(size)-\(chunkSize)",
        chainName: "p-\(size)-\(chunkSize).chain")
      XCTAssertEqual(chain.header.root.hex, root, "\(size) bytes in \(chunkSize)-byte chunks")
    }
  }

  func testHelloArchiveIsByteIdentical() throws {
    let dump = """
      43 48 41 49 4e 46 53 00 01 00 01 00 88 00 00 00 04 00 00 00 00 00 00 00 05 00 00 00
      00 00 00 00 02 00 00 00 00 00 00 00 00 f1 53 65 00 00 00 00 00 65 cd 1d 09 00 00 00
      09 2d 27 4a e8 a6 60 19 1f 26 66 7a a8 7e 67 6d c1 6d 92 22 d6 ce a2 83 e4 c9 0d 79
      94 9d 50 14 68 65 6c 6c 6f 2e 74 78 74 00 00 00 00 00 00 00 75 51 3f 41 14 49 53 c7
      13 5c 7e 7c fe 09 31 1e 7d bc e6 7f cc df 7a 73 d5 67 bd fd e7 dd c0 48 68 65 6c 6c
      65 c7 4c 15 a6 86 18 7b b6 bb f9 95 8f 49 4f c6 b8 00 68 03 4a 65 9a 9a d4 49 91 b0
      8c 58 f2 d2 6f
      """
    let expected = dump.split(whereSeparator: \.isWhitespace).map { UInt8($0, radix: 16)! }
    XCTAssertEqual(expected.count, 173)

    try write(Array("hello".utf8), to: path("hello.txt"))
    var times = [
      timespec(tv_sec: 1_700_000_000, tv_nsec: 500_000_000),
      timespec(tv_sec: 1_700_000_000, tv_nsec: 500_000_000),
    ]
    XCTAssertEqual(utimensat(AT_FDCWD, path("hello.txt"), &times, 0), 0)

    for method in ChainEncoder.Method.allCases {
      let chain = try makeChain(
        Array("hello".utf8), chunkSize: 4, format: .archive, method: method, name: "hello.txt",
        chainName: "hello-\(method.rawValue).chain")
      XCTAssertEqual(try contents(chain.path), expected, "\(method)")
    }
  }
}
