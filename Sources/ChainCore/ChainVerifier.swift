/// What a user trusts: the root, published out of band, and the chunk size.
///
/// The root alone does not pin the chunk size: record 0 alone, claimed as one chunk of
/// `chunkSize + 32` bytes, hashes to the same root. So a trusted root is only ever used
/// together with a trusted chunk size.
public struct TrustAnchor: Sendable {
  public static let defaultChunkSize = 1 << 20

  public var root: Digest?
  public var chunkSize: Int?

  public init(root: Digest? = nil, chunkSize: Int? = nil) {
    self.root = root
    self.chunkSize = chunkSize
  }

  /// False when only the chain's own recorded root is available, which catches accidental
  /// corruption but not tampering.
  public var isTrusted: Bool { root != nil }

  /// The root to check `header`'s chain against, after checking the chunk size.
  public func root(for header: ChainHeader) throws -> Digest {
    let trustedChunkSize = chunkSize ?? (root != nil ? TrustAnchor.defaultChunkSize : nil)
    if let trustedChunkSize, trustedChunkSize != header.chunkSize {
      throw ChainError.chunkSizeMismatch(claimed: header.chunkSize, trusted: trustedChunkSize)
    }
    return root ?? header.root
  }
}

/// Hears about each chunk as it is done, in chain order: for logs and progress.
public protocol ChainObserver: AnyObject {
  func chunkDone(_ index: Int, offset: Int, length: Int, digest: Digest)
}

/// Checks a whole chain from its root, and optionally writes the proven bytes out.
///
/// Records are read and hashed on `jobs` threads at once (each record's hash is
/// independent of the others); only the comparison with the previous record's link, and
/// the write, run in chain order. No byte is written before its record is checked.
public struct ChainVerifier {
  public let source: ChainSource
  public let root: Digest
  public var jobs: Int

  public init(source: ChainSource, trust: TrustAnchor, jobs: Int) throws {
    self.source = source
    self.root = try trust.root(for: source.header)
    self.jobs = max(1, jobs)
  }

  /// Verifies every record, writing each chunk to `output` (at its offset) once proven.
  public func run(writingTo output: SystemFile? = nil, observer: ChainObserver? = nil) throws {
    let geometry = source.geometry
    let depth = 2 * jobs
    let buffers = (0..<depth).map { _ in source.makeRecordBuffer() }
    var expected = root

    try runOrdered(
      count: geometry.chunkCount, workers: jobs, depth: depth,
      produce: { index, slot in
        let record = try source.readRecord(index, into: buffers[slot])
        return (record, SHA256.hash(record))
      },
      consume: { index, _, product in
        let (record, digest) = product
        guard digest == expected else {
          throw ChainError.hashMismatch(chunk: index, expected: expected, actual: digest)
        }

        let length = geometry.chunkLength(index)
        if index < geometry.lastChunk {
          expected = Digest(bytes: UnsafeRawBufferPointer(rebasing: record[length...]))
        }
        try output?.write(
          UnsafeRawBufferPointer(rebasing: record[..<length]), at: geometry.chunkOffset(index))
        observer?.chunkDone(
          index, offset: geometry.chunkOffset(index), length: length, digest: digest)
      })

    try source.checkNothingBeyondChain()
  }
}
