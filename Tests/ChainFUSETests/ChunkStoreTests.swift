import ChainCore
import Foundation
import XCTest

@testable import ChainFUSE

/// The chunk store driven directly, without /dev/fuse: what it serves, what it refuses,
/// and how it behaves under many threads.
final class ChunkStoreTests: XCTestCase {
  private var directory = ""
  private var chunkSize = 4096

  override func setUpWithError() throws {
    directory = FileManager.default.temporaryDirectory.path + "/chunkstore-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Encodes `count` pseudo-random bytes as an archive; returns the bytes and the header.
  private func makeArchive(count: Int) throws -> (original: [UInt8], header: ChainHeader) {
    var generator = SystemRandomNumberGenerator()
    let original = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let input = directory + "/clip.bin"
    _ = FileManager.default.createFile(atPath: input, contents: Data(original))
    var encoder = ChainEncoder()
    encoder.chunkSize = chunkSize
    encoder.format = .archive
    let header = try encoder.encode(inputPath: input, outputPath: directory + "/clip.chain")
    return (original, header)
  }

  private func store(
    root: Digest, cacheBudget: Int = 1 << 20, readahead: Int? = nil
  ) throws -> ChunkStore {
    var options = StoreOptions()
    options.cacheBudget = cacheBudget
    options.readahead = readahead
    return ChunkStore(
      source: try openChainSource(directory + "/clip.chain"), root: root, options: options)
  }

  /// Flips one byte of chunk `index`'s data in the archive, in place.
  private func tamper(chunk index: Int, at position: Int = 7, header: ChainHeader) throws {
    let file = try SystemFile(path: directory + "/clip.chain", flags: O_RDWR)
    let offset = header.encodedLength + index * (chunkSize + Digest.byteCount) + position
    var byte: [UInt8] = [0]
    _ = try byte.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
    byte[0] ^= 0x01
    try byte.withUnsafeBytes { try file.write($0, at: offset) }
  }

  private func expected(_ original: [UInt8], chunk index: Int) -> [UInt8] {
    Array(original[(index * chunkSize)..<min((index + 1) * chunkSize, original.count)])
  }

  func testServesEveryChunkInAnyOrder() throws {
    let (original, header) = try makeArchive(count: 20 * chunkSize + 99)
    let store = try store(root: header.root)

    for index in (0..<header.chunkCount).shuffled() {
      XCTAssertEqual(Array(try store.chunk(index).bytes), expected(original, chunk: index))
    }
  }

  func testTamperedChunkAndEverythingAfterItAreRefused() throws {
    let (original, header) = try makeArchive(count: 12 * chunkSize)
    try tamper(chunk: 5, header: header)
    let store = try store(root: header.root)

    XCTAssertThrowsError(try store.chunk(9)) { error in
      guard case ChainError.hashMismatch(chunk: 5, _, _) = error else {
        return XCTFail("expected a mismatch at chunk 5 on the way to 9, got \(error)")
      }
    }
    XCTAssertEqual(store.failedChunk, 5)
    XCTAssertThrowsError(try store.chunk(5))
    XCTAssertThrowsError(try store.chunk(11)) { error in
      guard case ChainError.untrustedChunk(chunk: 11, failedChunk: 5) = error else {
        return XCTFail("expected chunk 11 to be untrusted because of 5, got \(error)")
      }
    }
    for index in 0..<5 {
      XCTAssertEqual(Array(try store.chunk(index).bytes), expected(original, chunk: index))
    }
  }

  func testWrongRootServesNothing() throws {
    _ = try makeArchive(count: 3 * chunkSize)
    let store = try store(root: SHA256.hash([1, 2, 3]))

    XCTAssertThrowsError(try store.chunk(0))
    XCTAssertThrowsError(try store.chunk(2))
    XCTAssertEqual(store.failedChunk, 0)
  }

  /// Eight threads read random chunks through a cache of four, with readahead running:
  /// every answer must still be the original bytes.
  func testConcurrentReadersThroughASmallCache() throws {
    let (original, header) = try makeArchive(count: 64 * chunkSize + 1)
    let store = try store(root: header.root, cacheBudget: 4 * 2 * chunkSize)
    let mismatches = ManagedCounter()

    DispatchQueue.concurrentPerform(iterations: 8) { reader in
      var generator = SystemRandomNumberGenerator()
      for _ in 0..<200 {
        let index = Int.random(in: 0..<header.chunkCount, using: &generator)
        if reader % 2 == 0 { store.readAhead(after: index) }
        let bytes = try? store.chunk(index).bytes
        if bytes.map(Array.init) != expected(original, chunk: index) { mismatches.add() }
      }
    }
    XCTAssertEqual(mismatches.value, 0)
  }

  func testVerifyAllChecksTheWholeChain() throws {
    let (_, header) = try makeArchive(count: 30 * chunkSize + 5)
    try store(root: header.root).verifyAll()

    try tamper(chunk: 29, header: header)
    XCTAssertThrowsError(try store(root: header.root).verifyAll())
  }

  // MARK: Page digests

  /// A store whose cache holds only a few 64 KiB chunks, with chunk `remembered` read
  /// once, its pages digested, and then pushed out of the cache by later chunks.
  private func storeWithEvictedChunk(
    _ remembered: Int, header: ChainHeader
  ) throws -> ChunkStore {
    let store = try store(root: header.root, cacheBudget: 8 * chunkSize, readahead: 2)
    store.rememberPages(of: try store.chunk(remembered))
    store.settlePageDigests()
    for index in (remembered + 1)..<header.chunkCount { _ = try store.chunk(index) }
    return store
  }

  func testSmallReadOfAnEvictedChunkReadsOnlyItsPages() throws {
    chunkSize = 64 << 10
    let (original, header) = try makeArchive(count: 20 * chunkSize + 1234)
    let store = try storeWithEvictedChunk(3, header: header)

    let range = 5000..<13000
    let span = try store.bytes(of: 3, in: range)
    XCTAssertFalse(span.isWhole)
    XCTAssertEqual(span.offset, 4096)
    XCTAssertEqual(span.bytes.count, 3 * 4096)
    let served = span.bytes[(range.lowerBound - span.offset)..<(range.upperBound - span.offset)]
    let start = 3 * chunkSize + range.lowerBound
    XCTAssertEqual(Array(served), Array(original[start..<(start + range.count)]))

    // The last chunk is short, and so is its last page.
    store.rememberPages(of: try store.chunk(20))
    store.settlePageDigests()
    for index in 0..<10 { _ = try store.chunk(index) }
    let tail = try store.bytes(of: 20, in: 1000..<1234)
    XCTAssertFalse(tail.isWhole)
    XCTAssertEqual(Array(tail.bytes), Array(original[(20 * chunkSize)...]))
  }

  /// The backing data changes after a chunk was verified: the pages it kept digests of
  /// catch the change, and the chunk fails like any other.
  func testPageChangedAfterItsChunkWasVerifiedIsRefused() throws {
    chunkSize = 64 << 10
    let (original, header) = try makeArchive(count: 12 * chunkSize)
    let store = try storeWithEvictedChunk(6, header: header)
    try tamper(chunk: 6, at: 2 * 4096 + 100, header: header)

    let untouched = try store.bytes(of: 6, in: 0..<100)
    XCTAssertFalse(untouched.isWhole)
    XCTAssertEqual(
      Array(untouched.bytes.prefix(100)), Array(original[(6 * chunkSize)...].prefix(100)))
    XCTAssertThrowsError(try store.bytes(of: 6, in: 8192..<8292)) { error in
      guard case ChainError.changedAfterCheck(chunk: 6, page: 2) = error else {
        return XCTFail("expected page 2 of chunk 6 to have changed, got \(error)")
      }
    }
    XCTAssertEqual(store.failedChunk, 6)
    XCTAssertThrowsError(try store.bytes(of: 6, in: 0..<100))
    XCTAssertThrowsError(try store.chunk(7))
    XCTAssertEqual(Array(try store.chunk(5).bytes), expected(original, chunk: 5))
  }

  /// Chunks too small to hold several pages are always read whole.
  func testSmallChunksKeepNoPageDigests() throws {
    let (_, header) = try makeArchive(count: 40 * chunkSize)
    let store = try store(root: header.root, cacheBudget: 8 * chunkSize, readahead: 2)
    store.rememberPages(of: try store.chunk(1))
    store.settlePageDigests()
    for index in 2..<40 { _ = try store.chunk(index) }

    XCTAssertTrue(try store.bytes(of: 1, in: 0..<10).isWhole)
  }
}

/// A counter that many threads can bump.
private final class ManagedCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0

  func add() { lock.withLock { count += 1 } }
  var value: Int { lock.withLock { count } }
}
