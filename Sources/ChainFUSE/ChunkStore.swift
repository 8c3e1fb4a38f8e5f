import ChainCore
import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How a mounted chain is checked and cached.
public struct StoreOptions: Sendable {
  /// Byte budget of verified chunks kept in memory.
  public var cacheBudget = 64 << 20
  /// Chunks read and verified ahead of a sequential reader; by default, 8 MiB worth.
  public var readahead: Int?
  /// Threads that hash records when the verified frontier must move far.
  public var jobs = 2

  public init() {}
}

/// Serves verified chunks of one chain, lazily, to many threads at once.
///
/// The store keeps a table of trusted digests, 32 bytes a chunk. It starts with the root
/// and grows as records are verified: each verified record yields the next chunk's digest.
/// Digests are known for a prefix of the chunks, the verified frontier. Reading chunk
/// `j` inside the frontier costs one record read and one hash; beyond it, the records from
/// the frontier to `j` are checked first, in parallel, keeping only their digests.
///
/// Once a record fails, that chunk and every later one can never be trusted: they fail
/// with `untrustedChunk`, while the chunks before stay readable.
public final class ChunkStore: @unchecked Sendable {
  public let source: ChainSource
  public let geometry: ChainGeometry
  public let options: StoreOptions

  private let state = NSCondition()
  // Trusted digests of chunks 0 ..< digests.count: the verified frontier. It only grows
  // as records are verified, so a header claiming billions of chunks costs nothing.
  private var digests: [Digest]
  private var extending = false
  private var failure: (chunk: Int, error: ChainError)?
  private var cache: ChunkCache<VerifiedChunk>
  private let buffers: BufferPool
  // Page digests of chunks that readers bypassing the page cache asked for at random, and
  // the chunks whose digests are still being computed.
  private var pages: ChunkCache<PageDigests>
  private var pagesPending = Set<Int>()
  private let pageQueue = DispatchQueue(label: "chainfs.page-digests", qos: .utility)
  private var loading: [Int: PendingChunk] = [:]
  private let readahead: Int
  // Chunks queued for background loading, taken lowest first by the loader threads. The
  // queue has its own lock, so that idle loaders sleep through the many wakeups on `state`.
  private let queue = NSCondition()
  private var queued = Set<Int>()
  private var loadersStarted = false
  private var logsFailures = true

  public init(source: ChainSource, root: Digest, options: StoreOptions = .init()) {
    self.source = source
    self.geometry = source.geometry
    self.options = options
    readahead = options.readahead ?? max(2, min(64, (8 << 20) / geometry.chunkSize))

    // Pooled buffers count against the cache budget, so that it bounds all chunk memory,
    // except that the cache always holds the readahead window and the chunk being read:
    // with less, chunks loaded ahead would be evicted before their reader came.
    // A quarter of the budget keeps page digests: 32 bytes a page, so 16 MiB of a 64 MiB
    // cache covers 2 GiB of randomly read file.
    let recordBuffer = source.makeRecordBuffer().capacity
    let pageBudget = ChunkStore.digestsPages(geometry) ? options.cacheBudget / 4 : 0
    let chunkBudget = options.cacheBudget - pageBudget
    let wanted = 2 * options.jobs + readahead + 2
    let pooled = min(wanted, max(2, chunkBudget / recordBuffer / 2))
    buffers = BufferPool(bufferCapacity: recordBuffer, limit: pooled)
    let window = (readahead + 2) * recordBuffer
    cache = ChunkCache(budget: max(window, chunkBudget - pooled * recordBuffer))
    pages = ChunkCache(budget: pageBudget)
    digests = [root]
  }

  /// The first chunk that failed verification, if any.
  public var failedChunk: Int? { state.withLock { failure?.chunk } }

  // MARK: Reading

  /// The verified bytes of chunk `index`, loading and checking its record if needed.
  /// Concurrent requests for one chunk share a single load.
  public func chunk(_ index: Int) throws -> VerifiedChunk {
    precondition(index >= 0 && index < geometry.chunkCount)
    state.lock()
    if let failure, index >= failure.chunk {
      state.unlock()
      throw untrusted(index, failure)
    }
    if let cached = cache.lookup(index) {
      state.unlock()
      return cached
    }
    if let pending = loading[index] {
      state.unlock()
      return try pending.wait()
    }
    let pending = PendingChunk()
    loading[index] = pending
    state.unlock()

    let result = Result { try load(index) }
    state.withLock {
      loading[index] = nil
      if case .success(let chunk) = result { cache.insert(chunk) }
      state.broadcast()
    }
    pending.fulfil(result)
    return try result.get()
  }

  /// Verified bytes `range` (offsets within the chunk) of chunk `index`, for a small read.
  ///
  /// A cached chunk serves them as it is. A chunk that has left the cache but whose pages
  /// were digested earlier costs reading and hashing only the pages that hold `range`.
  /// Any other chunk is loaded whole, as by `chunk(_:)`.
  public func bytes(of index: Int, in range: Range<Int>) throws -> VerifiedChunk {
    precondition(index >= 0 && index < geometry.chunkCount)
    precondition(range.lowerBound >= 0 && range.upperBound <= geometry.chunkLength(index))
    let pageDigests = try state.withLock { () throws -> PageDigests? in
      if let failure, index >= failure.chunk { throw untrusted(index, failure) }
      if cache.contains(index) || loading[index] != nil { return nil }
      return pages.lookup(index)
    }
    guard let pageDigests else { return try chunk(index) }
    return try loadPages(of: index, covering: range, digests: pageDigests)
  }

  /// Digests the pages of `chunk` in the background, so that later small reads of it need
  /// not hash it whole again. Meant for chunks that a reader bypassing the page cache asked
  /// for at random: a sequential reader does not come back, and any other reader finds the
  /// chunk in the page cache. A backlog is dropped rather than kept in memory.
  public func rememberPages(of chunk: VerifiedChunk) {
    guard chunk.isWhole, ChunkStore.digestsPages(geometry) else { return }
    let wanted = state.withLock {
      !pages.contains(chunk.index) && pagesPending.count < 2 * options.jobs
        && pagesPending.insert(chunk.index).inserted
    }
    guard wanted else { return }
    pageQueue.async { [self] in
      let computed = PageDigests(of: chunk)
      state.withLock {
        pagesPending.remove(chunk.index)
        pages.insert(computed)
      }
    }
  }

  /// Waits until the page digests asked for so far are computed.
  func settlePageDigests() {
    pageQueue.sync {}
  }

  /// Page digests pay off when a chunk holds several pages.
  static func digestsPages(_ geometry: ChainGeometry) -> Bool {
    geometry.chunkSize >= 4 * PageDigests.pageSize
  }

  /// Starts loading the chunks after `index` in the background, for a sequential reader.
  public func readAhead(after index: Int) {
    guard index < geometry.lastChunk else { return }
    prefetch((index + 1)...min(index + readahead, geometry.lastChunk))
  }

  /// Starts loading `indexes` in the background, skipping chunks cached or on their way.
  ///
  /// `jobs` loader threads take queued chunks lowest first. In that order each load finds
  /// the one before it already under way, and waits for its link instead of verifying the
  /// records before it a second time.
  public func prefetch(_ indexes: ClosedRange<Int>) {
    let wanted = state.withLock {
      failure == nil ? indexes.filter { !cache.contains($0) && loading[$0] == nil } : []
    }
    guard !wanted.isEmpty else { return }
    queue.withLock {
      queued.formUnion(wanted)
      if !loadersStarted {
        loadersStarted = true
        for _ in 0..<options.jobs { Thread.detachNewThread { [self] in runLoader() } }
      }
      queue.broadcast()
    }
  }

  private func runLoader() {
    while true {
      let index = queue.withLock { () -> Int in
        while queued.isEmpty { queue.wait() }
        return queued.remove(queued.min()!)!
      }
      _ = try? chunk(index)
    }
  }

  /// Moves the frontier to the end and checks the last record: the whole chain. A failure
  /// is thrown to the caller, who reports it, rather than logged as a serving failure.
  public func verifyAll(jobs: Int? = nil) throws {
    logsFailures = false
    defer { logsFailures = true }
    _ = try trustedDigest(geometry.lastChunk, jobs: jobs ?? options.jobs)
    _ = try chunk(geometry.lastChunk)
    try source.checkNothingBeyondChain()
  }

  /// Extends the frontier to the end a few chunks at a time, on one thread, so that later
  /// seeks cost one record each. Stops early at a failure, which it records.
  public func verifyInBackground(batch: Int = 16) {
    while true {
      let target = state.withLock {
        failure == nil ? min(digests.count - 1 + batch, geometry.lastChunk) : -1
      }
      guard target >= 0 else { return }
      do {
        _ = try trustedDigest(target, jobs: 1)
        if target == geometry.lastChunk {
          _ = try chunk(target)
          return
        }
      } catch {
        return
      }
    }
  }

  // MARK: Verification

  /// Reads and hashes record `index`, then checks it once its trusted digest is known.
  ///
  /// Hashing comes first because it needs no digest: loads of consecutive chunks (a
  /// sequential reader and its readahead) hash in parallel, and each then waits only for
  /// the load before it to yield its digest.
  private func load(_ index: Int) throws -> VerifiedChunk {
    let buffer = buffers.take()
    let record: UnsafeRawBufferPointer
    do {
      record = try checked(index) { try source.readRecord(index, into: buffer) }
      let actual = SHA256.hash(record)
      let expected = try trustedDigest(index, jobs: options.jobs)
      guard actual == expected else {
        throw recordFailure(index, .hashMismatch(chunk: index, expected: expected, actual: actual))
      }
    } catch {
      buffers.give(buffer)
      throw error
    }

    let length = geometry.chunkLength(index)
    if let link = geometry.link(in: record, of: index) { learn(index + 1, link) }
    let bytes = UnsafeRawBufferPointer(rebasing: record[..<length])
    return VerifiedChunk(index: index, buffer: buffer, bytes: bytes, pool: buffers)
  }

  /// Reads the pages of chunk `index` that hold `range` and checks each against its digest.
  ///
  /// A page that no longer matches was changed after its chunk was verified: that is a
  /// failure of the chunk like any other.
  private func loadPages(
    of index: Int, covering range: Range<Int>, digests: PageDigests
  ) throws -> VerifiedChunk {
    let pageSize = PageDigests.pageSize
    let wanted = PageDigests.pages(covering: range)
    let start = wanted.lowerBound * pageSize
    let end = min(wanted.upperBound * pageSize, geometry.chunkLength(index))
    let buffer = AlignedBuffer(capacity: end - start + 2 * AlignedBuffer.alignment)
    let bytes = try checked(index) {
      try source.readRecord(index, slice: start..<end, into: buffer)
    }

    for page in wanted {
      let first = page * pageSize - start
      let actual = SHA256.hash(
        UnsafeRawBufferPointer(rebasing: bytes[first..<min(first + pageSize, bytes.count)]))
      guard actual == digests.digests[page] else {
        throw recordFailure(index, .changedAfterCheck(chunk: index, page: page))
      }
    }
    return VerifiedChunk(index: index, offset: start, buffer: buffer, bytes: bytes, pool: nil)
  }

  /// The trusted digest of chunk `index`, first verifying the records up to it if needed.
  private func trustedDigest(_ index: Int, jobs: Int) throws -> Digest {
    state.lock()
    while true {
      if let failure, index >= failure.chunk {
        state.unlock()
        throw untrusted(index, failure)
      }
      if index < digests.count {
        defer { state.unlock() }
        return digests[index]
      }
      // The load of the chunk just below is under way and will yield the digest.
      let yielding = loading[index - 1] != nil && index - 1 < digests.count
      if !extending && !yielding { break }
      state.wait()
    }
    extending = true
    let first = digests.count - 1
    let expected = digests[first]
    state.unlock()
    defer {
      state.withLock {
        extending = false
        state.broadcast()
      }
    }

    let slots = (0..<2 * jobs).map { _ in buffers.take() }
    defer { slots.forEach(buffers.give) }
    do {
      try proveRecords(first..<index, of: source, from: expected, jobs: jobs, buffers: slots) {
        [self] chunk, record, _ in learn(chunk + 1, geometry.link(in: record, of: chunk)!)
      }
    } catch let error as ChainError where error.isIntegrityFailure && error.chunk != nil {
      throw recordFailure(error.chunk!, error)
    }
    Log.shared.debug("verified chunks \(first) to \(index - 1) to reach chunk \(index)")
    return state.withLock { digests[index] }
  }

  private func learn(_ index: Int, _ digest: Digest) {
    state.withLock {
      guard index == digests.count else { return }
      digests.append(digest)
      state.broadcast()
    }
  }

  /// Runs a record read, recording integrity failures (a short, long or missing record)
  /// as the chain's failure; I/O errors pass through unrecorded, since a retry may work.
  private func checked<T>(_ index: Int, _ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as ChainError where error.isIntegrityFailure {
      throw recordFailure(index, error)
    }
  }

  private func recordFailure(_ index: Int, _ error: ChainError) -> ChainError {
    let first = state.withLock { () -> Bool in
      guard failure == nil || index < failure!.chunk else { return false }
      failure = (index, error)
      state.broadcast()
      return true
    }
    if first && logsFailures {
      Log.shared.warning("\(error); chunks from \(index) on will not be served")
    }
    return error
  }

  private func untrusted(_ index: Int, _ failure: (chunk: Int, error: ChainError)) -> ChainError {
    index == failure.chunk
      ? failure.error : .untrustedChunk(chunk: index, failedChunk: failure.chunk)
  }
}

/// A load in progress that other readers of the same chunk wait for.
private final class PendingChunk: @unchecked Sendable {
  private let condition = NSCondition()
  private var result: Result<VerifiedChunk, Error>?

  func fulfil(_ result: Result<VerifiedChunk, Error>) {
    condition.withLock {
      self.result = result
      condition.broadcast()
    }
  }

  func wait() throws -> VerifiedChunk {
    try condition.withLock {
      while result == nil { condition.wait() }
      return try result!.get()
    }
  }
}
