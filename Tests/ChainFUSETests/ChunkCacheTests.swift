import ChainCore
import XCTest

@testable import ChainFUSE

final class ChunkCacheTests: XCTestCase {
  private let pool = BufferPool(bufferCapacity: 4096, limit: 0)

  private func chunk(_ index: Int) -> VerifiedChunk {
    let buffer = AlignedBuffer(capacity: 4096)
    return VerifiedChunk(
      index: index, buffer: buffer, bytes: UnsafeRawBufferPointer(buffer.bytes), pool: pool)
  }

  func testEvictsTheLeastRecentlyUsedWithinTheBudget() {
    var cache = ChunkCache<VerifiedChunk>(budget: 3 * 4096)
    for index in 0..<3 { cache.insert(chunk(index)) }
    XCTAssertNotNil(cache.lookup(0))

    cache.insert(chunk(3))
    XCTAssertTrue(cache.contains(0), "just used, so kept")
    XCTAssertFalse(cache.contains(1), "least recently used, so evicted")
    XCTAssertTrue(cache.contains(2))
    XCTAssertTrue(cache.contains(3))
    XCTAssertEqual(cache.usedBytes, 3 * 4096)
  }

  func testAChunkLargerThanTheBudgetIsStillKeptAlone() {
    var cache = ChunkCache<VerifiedChunk>(budget: 100)
    cache.insert(chunk(0))
    XCTAssertTrue(cache.contains(0))
    cache.insert(chunk(1))
    XCTAssertFalse(cache.contains(0))
    XCTAssertTrue(cache.contains(1))
  }

  func testReadStreamTellsSequentialFromSeeks() {
    let stream = ReadStream(bypassesPageCache: false, slack: 2)
    XCTAssertTrue(stream.isSequential(0...0))
    XCTAssertTrue(stream.isSequential(0...1))
    XCTAssertTrue(stream.isSequential(2...2))
    XCTAssertFalse(stream.isSequential(40...40), "a seek forwards")
    XCTAssertTrue(stream.isSequential(41...41))
    XCTAssertFalse(stream.isSequential(3...3), "a seek backwards")
  }

  func testReadStreamTakesReadsArrivingOutOfOrderAsSequential() {
    let stream = ReadStream(bypassesPageCache: false, slack: 2)
    XCTAssertTrue(stream.isSequential(0...0))
    XCTAssertTrue(stream.isSequential(2...2), "answered before the read of chunk 1")
    XCTAssertTrue(stream.isSequential(1...1), "the straggler")
    XCTAssertTrue(stream.isSequential(3...3), "the stream is still at chunk 2")
    XCTAssertFalse(stream.isSequential(6...6), "further ahead than the slack")
    XCTAssertTrue(stream.isSequential(7...7))

    let seeking = ReadStream(bypassesPageCache: true, slack: 32)
    XCTAssertFalse(seeking.isSequential(5...5), "a first read that does not start the file")
    XCTAssertTrue(seeking.isSequential(6...6))
  }
}
