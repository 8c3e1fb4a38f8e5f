import ChainCore
import Foundation
import Synchronization

/// A chunk whose record has been checked against the chain: the only bytes ever served.
public final class VerifiedChunk: @unchecked Sendable {
  public let index: Int
  /// The chunk's bytes, inside `buffer`; the record's trailing link is not included.
  public let bytes: UnsafeRawBufferPointer
  private let buffer: AlignedBuffer
  private let pool: BufferPool
  private let handedToKernel = Atomic<Bool>(false)

  init(index: Int, buffer: AlignedBuffer, bytes: UnsafeRawBufferPointer, pool: BufferPool) {
    self.index = index
    self.buffer = buffer
    self.bytes = bytes
    self.pool = pool
  }

  // The last reader is done and the cache has let go: the buffer can hold another record.
  deinit {
    pool.give(buffer)
  }

  /// True the first time only: a chunk is copied into the kernel's page cache once.
  func claimKernelCopy() -> Bool {
    !handedToKernel.exchange(true, ordering: .relaxed)
  }

  /// What the chunk costs the cache budget: the whole buffer it keeps alive.
  var cost: Int { buffer.capacity }
}

/// Least-recently-used verified chunks within a byte budget. Not thread-safe: the chunk
/// store calls it under its lock.
struct ChunkCache {
  private final class Node {
    let chunk: VerifiedChunk
    var newer: Node?
    weak var older: Node?
    init(_ chunk: VerifiedChunk) { self.chunk = chunk }
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

  /// The chunk if cached, which then counts as just used.
  mutating func lookup(_ index: Int) -> VerifiedChunk? {
    guard let node = nodes[index] else { return nil }
    unlink(node)
    pushNewest(node)
    return node.chunk
  }

  /// Adds a chunk, evicting the least recently used ones to stay within the budget.
  /// A chunk larger than the whole budget is still kept alone, so a read can progress.
  mutating func insert(_ chunk: VerifiedChunk) {
    if let existing = nodes[chunk.index] {
      unlink(existing)
      pushNewest(existing)
      return
    }
    let node = Node(chunk)
    nodes[chunk.index] = node
    pushNewest(node)
    usedBytes += chunk.cost
    while usedBytes > budget, let victim = oldest, victim !== node {
      unlink(victim)
      nodes[victim.chunk.index] = nil
      usedBytes -= victim.chunk.cost
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
