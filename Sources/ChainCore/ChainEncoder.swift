#if canImport(Glibc)
  import Glibc
#endif

/// Turns a file into a chain.
///
/// Record `i` must carry the digest of record `i+1`, so the digests are finished from the
/// end of the file backwards. The bulk of the work, absorbing each chunk into SHA-256, does
/// not depend on the next digest, so it runs on `jobs` threads; only the short finish (the
/// last partial block, the 32-byte link and the padding) runs in chain order.
public struct ChainEncoder {
  public enum Method: String, CaseIterable, Sendable {
    /// Reads the file from its end backwards, finishing each digest as soon as the next
    /// one is known and writing each record once. Memory: a few chunks.
    case backwardsSeeking = "backwards-seeking"
    /// Reads the file forwards once, writing each chunk and keeping its hashing state,
    /// then finishes the digests backwards and writes the links. Memory: one hashing
    /// state (a few hundred bytes) per chunk.
    case forwardBackwards = "forward-backwards"
  }

  public enum Format: String, CaseIterable, Sendable {
    case folder, archive
  }

  public var chunkSize = TrustAnchor.defaultChunkSize
  public var format = Format.folder
  public var method = Method.backwardsSeeking
  public var jobs = 2
  public var force = false

  public init() {}

  /// The output path used when none is given: beside the input, named after it.
  public static func defaultOutputPath(for input: String, format: Format) -> String {
    var base = input
    while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
    let slash = base.lastIndex(of: "/")
    let nameStart = slash.map { base.index(after: $0) } ?? base.startIndex
    if let dot = base[nameStart...].lastIndex(of: "."), dot != nameStart {
      base = String(base[..<dot])
    } else if format == .folder {
      base += ".chunks"
    }
    return format == .archive ? base + ".chain" : base
  }

  /// Encodes `inputPath` into `outputPath` and returns the header, root included.
  @discardableResult
  public func encode(
    inputPath: String, outputPath: String, observer: ChainObserver? = nil
  ) throws -> ChainHeader {
    let input = try SystemFile.openForReading(inputPath)
    let status = try input.status()
    guard status.st_mode & S_IFMT == S_IFREG else {
      throw ChainError.invalidArgument("\(inputPath): not a regular file")
    }
    let name = String(inputPath.split(separator: "/").last ?? "")
    guard ChainHeader.isSafeName(name) else {
      throw ChainError.invalidArgument("\(inputPath): the file name cannot be stored in a chain")
    }
    guard chunkSize >= 1 && chunkSize <= ChainGeometry.maximumChunkSize else {
      throw ChainError.invalidArgument("chunk size must be 1 B to 1 GiB")
    }

    let geometry = ChainGeometry(chunkSize: chunkSize, fileSize: Int(status.st_size))
    let output = try AtomicOutput(finalPath: outputPath, isFolder: format == .folder, force: force)
    let sink = try RecordSink(
      output: output, format: format, geometry: geometry,
      headerLength: ChainHeader.encodedLength(nameLength: name.utf8.count))
    input.advise(POSIX_FADV_SEQUENTIAL)

    let root: Digest
    switch method {
    case .backwardsSeeking: root = try encodeBackwards(input, geometry, sink, observer)
    case .forwardBackwards: root = try encodeForwards(input, geometry, sink, observer)
    }

    let header = ChainHeader(
      geometry: geometry, name: name, modificationSeconds: Int64(status.st_mtim.tv_sec),
      modificationNanoseconds: UInt32(status.st_mtim.tv_nsec), root: root)
    try sink.finish(header)
    try output.commit()
    return header
  }

  private func encodeBackwards(
    _ input: SystemFile, _ geometry: ChainGeometry, _ sink: RecordSink,
    _ observer: ChainObserver?
  ) throws -> Digest {
    let depth = 2 * jobs
    let buffers = (0..<depth).map { _ in AlignedBuffer(capacity: geometry.chunkSize) }
    let hashers = (0..<depth).map { _ in SHA256() }
    let last = geometry.lastChunk
    var links = LinkWriter(geometry: geometry, sink: sink, observer: observer)

    // Workers read, write and absorb whole chunks; the chain-ordered part is the finish
    // and a 32-byte write of the link, so the bulk of the I/O runs in parallel too.
    try runOrdered(
      count: geometry.chunkCount, workers: jobs, depth: depth,
      produce: { position, slot in
        let chunk = try readChunk(last - position, of: input, geometry, into: buffers[slot])
        try sink.writeRecord(last - position, chunk)
        hashers[slot].reset()
        hashers[slot].update(chunk)
      },
      consume: { position, slot, _ in try links.finish(last - position, hashers[slot]) })
    return links.root
  }

  private func encodeForwards(
    _ input: SystemFile, _ geometry: ChainGeometry, _ sink: RecordSink,
    _ observer: ChainObserver?
  ) throws -> Digest {
    let depth = 2 * jobs
    let buffers = (0..<depth).map { _ in AlignedBuffer(capacity: geometry.chunkSize) }
    var states = [SHA256?](repeating: nil, count: geometry.chunkCount)

    try runOrdered(
      count: geometry.chunkCount, workers: jobs, depth: depth,
      produce: { index, slot in
        let chunk = try readChunk(index, of: input, geometry, into: buffers[slot])
        try sink.writeRecord(index, chunk)
        let hasher = SHA256()
        hasher.update(chunk)
        return hasher
      },
      consume: { index, _, hasher in states[index] = hasher })

    var links = LinkWriter(geometry: geometry, sink: sink, observer: observer)
    for index in stride(from: geometry.lastChunk, through: 0, by: -1) {
      try Interruption.check()
      try links.finish(index, states[index]!)
      states[index] = nil
    }
    return links.root
  }
}

/// Finishes chunk digests in chain order, last chunk first: each hasher that has absorbed
/// its chunk takes the link to the next record, which is also written into the record.
private struct LinkWriter {
  let geometry: ChainGeometry
  let sink: RecordSink
  let observer: ChainObserver?
  private var link: Digest?

  init(geometry: ChainGeometry, sink: RecordSink, observer: ChainObserver?) {
    self.geometry = geometry
    self.sink = sink
    self.observer = observer
  }

  /// The digest of chunk 0, once every chunk is finished.
  var root: Digest { link! }

  mutating func finish(_ index: Int, _ hasher: SHA256) throws {
    if let link {
      hasher.update(link)
      try sink.writeLink(index, link)
    }
    let digest = hasher.finish()
    observer?.chunkDone(
      index, offset: geometry.chunkOffset(index), length: geometry.chunkLength(index),
      digest: digest)
    link = digest
  }
}

/// Reads chunk `index` of the input into `buffer` and returns its bytes there.
private func readChunk(
  _ index: Int, of input: SystemFile, _ geometry: ChainGeometry, into buffer: AlignedBuffer
) throws -> UnsafeRawBufferPointer {
  let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[..<geometry.chunkLength(index)])
  guard try input.read(into: chunk, at: geometry.chunkOffset(index)) == chunk.count else {
    throw ChainError.invalidArgument("\(input.path): the file changed size while being encoded")
  }
  return UnsafeRawBufferPointer(chunk)
}

/// Writes records into an archive or a folder under construction.
final class RecordSink: @unchecked Sendable {
  private let output: AtomicOutput
  private let format: ChainEncoder.Format
  private let geometry: ChainGeometry
  private let headerLength: Int
  private let archive: SystemFile?

  init(
    output: AtomicOutput, format: ChainEncoder.Format, geometry: ChainGeometry, headerLength: Int
  ) throws {
    self.output = output
    self.format = format
    self.geometry = geometry
    self.headerLength = headerLength
    archive = format == .archive ? try output.createFile() : nil
    try archive?.truncate(to: headerLength + geometry.recordsLength)
  }

  private func recordName(_ index: Int) -> String {
    FolderSource.recordName(index, chunkCount: geometry.chunkCount)
  }

  /// Writes the chunk of a record; its link follows with `writeLink`.
  func writeRecord(_ index: Int, _ bytes: UnsafeRawBufferPointer) throws {
    if let archive {
      try archive.write(bytes, at: headerLength + index * geometry.recordStride)
    } else {
      try output.createFile(named: recordName(index)).write(bytes, at: 0)
    }
  }

  func writeLink(_ index: Int, _ link: Digest) throws {
    let offset = geometry.chunkLength(index)
    if let archive {
      try link.withUnsafeBytes {
        try archive.write($0, at: headerLength + index * geometry.recordStride + offset)
      }
    } else {
      let file = try output.openFile(named: recordName(index))
      try link.withUnsafeBytes { try file.write($0, at: offset) }
    }
  }

  func finish(_ header: ChainHeader) throws {
    let bytes = header.encoded()
    precondition(bytes.count == headerLength)
    let file = try archive ?? output.createFile(named: FolderSource.manifestName)
    try bytes.withUnsafeBytes { try file.write($0, at: 0) }
  }
}
