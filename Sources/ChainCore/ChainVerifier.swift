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
    let buffers = (0..<2 * jobs).map { _ in source.makeRecordBuffer() }

    try proveRecords(
      0..<geometry.chunkCount, of: source, from: root, jobs: jobs, buffers: buffers
    ) { index, record, digest in
      let length = geometry.chunkLength(index)
      let offset = geometry.chunkOffset(index)
      try output?.write(UnsafeRawBufferPointer(rebasing: record[..<length]), at: offset)
      observer?.chunkDone(index, offset: offset, length: length, digest: digest)
    }

    try source.checkNothingBeyondChain()
  }
}

/// Proves the records `chunks` in chain order, starting from `digest`, the trusted digest
/// of the first: the one mechanism behind verify, decode and the mount's frontier.
///
/// Records are read and hashed on `jobs` threads into `buffers` (at least `jobs` of them);
/// each digest is compared, in order, with the link the record before it carried. `proven`
/// gets each record once it is proven, with its digest; a failure throws the integrity
/// error naming the chunk.
public func proveRecords(
  _ chunks: Range<Int>, of source: ChainSource, from digest: Digest, jobs: Int,
  buffers: [AlignedBuffer],
  proven: (_ chunk: Int, _ record: UnsafeRawBufferPointer, _ digest: Digest) throws -> Void
) throws {
  let geometry = source.geometry
  var expected = digest

  try runOrdered(
    count: chunks.count, workers: jobs, depth: buffers.count,
    produce: { position, slot in
      let record = try source.readRecord(chunks.lowerBound + position, into: buffers[slot])
      return (record, SHA256.hash(record))
    },
    consume: { position, _, product in
      let index = chunks.lowerBound + position
      let (record, actual) = product
      guard actual == expected else {
        throw ChainError.hashMismatch(chunk: index, expected: expected, actual: actual)
      }
      if let link = geometry.link(in: record, of: index) { expected = link }
      try proven(index, record, actual)
    })
}

extension ChainGeometry {
  /// The digest of the next record, carried at the end of record `index`; nil for the
  /// last record, which carries none.
  public func link(in record: UnsafeRawBufferPointer, of index: Int) -> Digest? {
    guard index < lastChunk else { return nil }
    let length = chunkLength(index)
    return Digest(
      bytes: UnsafeRawBufferPointer(rebasing: record[length..<(length + Digest.byteCount)]))
  }
}
