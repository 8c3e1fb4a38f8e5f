import ChainCore
import Foundation
import Synchronization

/// Bytes of a chunk whose record has been checked against the chain: the only bytes ever
/// served. Usually the whole chunk; a small read of a chunk that left the cache gets only
/// the pages it asked for, checked against the page digests kept for that chunk.
public final class VerifiedChunk: ChunkCacheEntry, @unchecked Sendable {
  public let index: Int
  /// Where `bytes` starts within the chunk: 0 for a whole chunk.
  public let offset: Int
  /// The verified bytes, inside `buffer`; the record's trailing link is not included.
  public let bytes: UnsafeRawBufferPointer
  private let buffer: AlignedBuffer
  private let pool: BufferPool?
  private let handedToKernel = Atomic<Bool>(false)

  init(
    index: Int, offset: Int = 0, buffer: AlignedBuffer, bytes: UnsafeRawBufferPointer,
    pool: BufferPool?
  ) {
    self.index = index
    self.offset = offset
    self.buffer = buffer
    self.bytes = bytes
    self.pool = pool
  }

  // The last reader is done and the cache has let go: the buffer can hold another record.
  deinit {
    pool?.give(buffer)
  }

  /// True for the whole chunk, not a few pages of it.
  public var isWhole: Bool { offset == 0 && pool != nil }

  /// True the first time only: a chunk is copied into the kernel's page cache once, and
  /// only whole.
  func claimKernelCopy() -> Bool {
    isWhole && !handedToKernel.exchange(true, ordering: .relaxed)
  }

  /// Records that the kernel's own readahead is bringing the chunk into the page cache, so
  /// that a read of it arriving out of order later does not copy it there again.
  func noteKernelCopy() {
    handedToKernel.store(true, ordering: .relaxed)
  }

  /// What the chunk costs the cache budget: the whole buffer it keeps alive.
  var cost: Int { buffer.capacity }
}

/// The SHA-256 of each page of a verified chunk, computed from the verified bytes.
///
/// A random reader asks for a page or two of a chunk; proving them against the chain means
/// hashing the whole chunk. After that has been done once, these digests prove any page of
/// the chunk on their own, at the cost of hashing that page, long after the chunk's bytes
/// have left the cache. They are as trustworthy as the chunk they were computed from.
final class PageDigests: ChunkCacheEntry, @unchecked Sendable {
  static let pageSize = 4096

  let index: Int
  let digests: [Digest]

  init(of chunk: VerifiedChunk) {
    precondition(chunk.isWhole)
    index = chunk.index
    let bytes = chunk.bytes
    digests = stride(from: 0, to: bytes.count, by: PageDigests.pageSize).map { start in
      let end = min(start + PageDigests.pageSize, bytes.count)
      return SHA256.hash(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
    }
  }

  /// The pages holding bytes `range` of the chunk.
  static func pages(covering range: Range<Int>) -> Range<Int> {
    (range.lowerBound / pageSize)..<((range.upperBound + pageSize - 1) / pageSize)
  }

  var cost: Int { digests.count * MemoryLayout<Digest>.stride + 64 }
}

/// What an LRU cache holds: something a chunk index names and that costs memory.
protocol ChunkCacheEntry: AnyObject {
  var index: Int { get }
  var cost: Int { get }
}

/// Least-recently-used entries for chunks, within a byte budget. Not thread-safe: the
/// chunk store calls it under its lock.
struct ChunkCache<Entry: ChunkCacheEntry> {
  private final class Node {
    let entry: Entry
    var newer: Node?
    weak var older: Node?
    init(_ entry: Entry) { self.entry = entry }
  }

  let budget: Int
  private(set) var usedBytes = 0
  private var nodes: [Int: Node] = [:]
  // Newest at the head; the tail is the next to evict.
  private var newest: Node?
  private var oldest: Node?

  init(budget: Int) {
    self.budget = budget
  }

  func contains(_ index: Int) -> Bool { nodes[index] != nil }

  /// The entry if cached, which then counts as just used.
  mutating func lookup(_ index: Int) -> Entry? {
    guard let node = nodes[index] else { return nil }
    unlink(node)
    pushNewest(node)
    return node.entry
  }

  /// Adds an entry, evicting the least recently used ones to stay within the budget.
  /// An entry larger than the whole budget is still kept alone, so a read can progress.
  mutating func insert(_ entry: Entry) {
    if let existing = nodes[entry.index] {
      unlink(existing)
      pushNewest(existing)
      return
    }
    let node = Node(entry)
    nodes[entry.index] = node
    pushNewest(node)
    usedBytes += entry.cost
    while usedBytes > budget, let victim = oldest, victim !== node {
      unlink(victim)
      nodes[victim.entry.index] = nil
      usedBytes -= victim.entry.cost
    }
  }

  private mutating func pushNewest(_ node: Node) {
    node.newer = nil
    node.older = newest
    newest?.newer = node
    newest = node
    if oldest == nil { oldest = node }
  }

  private mutating func unlink(_ node: Node) {
    if let older = node.older { older.newer = node.newer } else { oldest = node.newer }
    if let newer = node.newer { newer.older = node.older } else { newest = node.older }
    node.newer = nil
    node.older = nil
  }
}

/// Record buffers kept for reuse.
///
/// A record buffer is large (a chunk and a page or two), so the allocator maps and unmaps
/// it each time; at a thousand chunks a second, the page faults and unmaps cost more than
/// the hashing. Reusing buffers keeps them mapped and warm.
final class BufferPool: @unchecked Sendable {
  private let lock = NSLock()
  private var free: [AlignedBuffer] = []
  private let capacity: Int
  private let limit: Int

  init(bufferCapacity: Int, limit: Int) {
    capacity = bufferCapacity
    self.limit = limit
  }

  func take() -> AlignedBuffer {
    lock.withLock { free.popLast() } ?? AlignedBuffer(capacity: capacity)
  }

  func give(_ buffer: AlignedBuffer) {
    lock.withLock {
      if free.count < limit { free.append(buffer) }
    }
  }
}
