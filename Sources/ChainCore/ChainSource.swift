import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Where a chain's records are kept, whatever the layout: the one interface the
/// verifier, the decoder and the FUSE driver read through.
public protocol ChainSource: AnyObject, Sendable {
  var path: String { get }
  var header: ChainHeader { get }
  var formatName: String { get }

  /// Reads record `index` into `buffer` and returns the bytes of the record within it.
  ///
  /// Throws `recordLength` when the stored record is shorter or longer than the geometry
  /// says, and `missingRecord` when it is not there at all. Nothing read is trusted yet.
  func readRecord(_ index: Int, into buffer: AlignedBuffer) throws -> UnsafeRawBufferPointer

  /// Reads the bytes `range` of record `index` into `buffer`, for a reader that can check
  /// a part of a record on its own. Throws `recordLength` when the record ends early.
  func readRecord(
    _ index: Int, slice range: Range<Int>, into buffer: AlignedBuffer
  ) throws -> UnsafeRawBufferPointer

  /// Fails when the source holds more than the chain's records: trailing bytes or files.
  func checkNothingBeyondChain() throws
}

extension ChainSource {
  public var geometry: ChainGeometry { header.geometry }

  /// A buffer large enough for any record of this chain, with slack for aligned reads.
  public func makeRecordBuffer() -> AlignedBuffer {
    AlignedBuffer(capacity: geometry.recordStride + 2 * AlignedBuffer.alignment)
  }
}

/// How backing bytes are read.
public struct SourceOptions: Sendable {
  /// Bypass the kernel's page cache for backing reads (O_DIRECT), so that a mounted chain
  /// is not cached twice: once as backing data and once as the served file.
  public var directIO = false

  public init(directIO: Bool = false) {
    self.directIO = directIO
  }
}

/// Opens a chain folder or a `.chain` archive, telling them apart by what `path` is.
public func openChainSource(_ path: String, options: SourceOptions = .init()) throws -> ChainSource
{
  switch fileKind(at: path) {
  case S_IFDIR: return try FolderSource(path: path, options: options)
  case S_IFREG: return try ArchiveSource(path: path, options: options)
  case nil: throw ChainError.system(SystemError("stat", path: path, errno: errno))
  default: throw ChainError.notAChain(path: path, reason: "neither a folder nor a regular file")
  }
}

/// Reads and parses a header from the start of `file`, reading no more than it declares.
func readHeader(from file: SystemFile, path: String) throws -> ChainHeader {
  var prefix = [UInt8](repeating: 0, count: 16)
  let prefixCount = try prefix.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
  let length = try ChainHeader.declaredLength(prefix: Array(prefix[0..<prefixCount]), path: path)
  var bytes = [UInt8](repeating: 0, count: length)
  let count = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
  return try ChainHeader(decoding: Array(bytes[0..<count]), path: path)
}

/// Reads `length` bytes at `offset`, directly when asked, and returns where they landed.
private func readSpan(
  _ file: SystemFile, direct: Bool, offset: Int, length: Int, into buffer: AlignedBuffer
) throws -> UnsafeRawBufferPointer {
  guard direct else {
    let count = try file.read(
      into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<length]), at: offset)
    return UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<count])
  }
  let start = AlignedBuffer.roundDown(offset)
  let end = AlignedBuffer.roundUp(offset + length)
  let count = try file.read(
    into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<(end - start)]), at: start)
  let head = offset - start
  let available = max(0, min(count - head, length))
  return UnsafeRawBufferPointer(rebasing: buffer.bytes[head..<(head + available)])
}

/// A single `.chain` file: the header, then the records back to back, so that record
/// `i` is found by arithmetic alone.
public final class ArchiveSource: ChainSource {
  public let path: String
  public let header: ChainHeader
  public let formatName = "archive"
  private let file: SystemFile
  private let directFile: SystemFile?

  public init(path: String, options: SourceOptions = .init()) throws {
    file = try SystemFile.openForReading(path)
    header = try readHeader(from: file, path: path)
    directFile = options.directIO ? try SystemFile(path: path, flags: O_RDONLY | openDirect) : nil
    self.path = path
  }

  public func recordOffset(_ index: Int) -> Int {
    header.encodedLength + index * geometry.recordStride
  }

  public func readRecord(_ index: Int, into buffer: AlignedBuffer) throws -> UnsafeRawBufferPointer
  {
    let expected = geometry.recordLength(index)
    let record = try readSpan(
      directFile ?? file, direct: directFile != nil, offset: recordOffset(index),
      length: expected, into: buffer)
    guard record.count == expected else {
      throw ChainError.recordLength(chunk: index, expected: expected, actual: record.count)
    }
    return record
  }

  public func readRecord(
    _ index: Int, slice range: Range<Int>, into buffer: AlignedBuffer
  ) throws -> UnsafeRawBufferPointer {
    let bytes = try readSpan(
      directFile ?? file, direct: directFile != nil,
      offset: recordOffset(index) + range.lowerBound, length: range.count, into: buffer)
    guard bytes.count == range.count else {
      let actual = range.lowerBound + bytes.count
      throw ChainError.recordLength(
        chunk: index, expected: geometry.recordLength(index), actual: actual)
    }
    return bytes
  }

  public func checkNothingBeyondChain() throws {
    let expected = header.encodedLength + geometry.recordsLength
    let actual = try file.size
    if actual > expected {
      throw ChainError.extraRecord(
        path: "\(path) (\(actual - expected) bytes after the last record)")
    }
  }
}

/// A folder of record files beside a manifest that holds the same bytes as an archive
/// header.
public final class FolderSource: ChainSource {
  public static let manifestName = "manifest"
  public static let recordExtension = "rec"

  public let path: String
  public let header: ChainHeader
  public let formatName = "folder"
  private let directIO: Bool

  public init(path: String, options: SourceOptions = .init()) throws {
    let manifestPath = path + "/" + FolderSource.manifestName
    let notAChain = ChainError.notAChain(
      path: path, reason: "no \(FolderSource.manifestName) file")
    guard let kind = fileKind(at: manifestPath) else {
      // A manifest that cannot be reached (no permission, say) is not a missing one.
      guard errno == ENOENT || errno == ENOTDIR else {
        throw ChainError.system(SystemError("stat", path: manifestPath, errno: errno))
      }
      throw notAChain
    }
    guard kind == S_IFREG else { throw notAChain }
    let manifest = try SystemFile.openForReading(manifestPath)
    header = try readHeader(from: manifest, path: manifestPath)
    guard try manifest.size == header.encodedLength else {
      throw ChainError.corruptHeader(path: manifestPath, reason: "bytes after the manifest")
    }
    directIO = options.directIO
    self.path = path
  }

  /// Zero-padded to one width for the whole chain, so that names sort in chain order.
  public static func recordName(_ index: Int, chunkCount: Int) -> String {
    let width = max(8, String(max(chunkCount - 1, 0)).count)
    let digits = String(index)
    return String(repeating: "0", count: width - digits.count) + digits + "." + recordExtension
  }

  public func recordPath(_ index: Int) -> String {
    path + "/" + FolderSource.recordName(index, chunkCount: geometry.chunkCount)
  }

  public func readRecord(_ index: Int, into buffer: AlignedBuffer) throws -> UnsafeRawBufferPointer
  {
    let file = try openRecord(index)

    // One byte more than expected tells a record that is too long.
    let expected = geometry.recordLength(index)
    let record = try readSpan(file, direct: directIO, offset: 0, length: expected + 1, into: buffer)
    guard record.count == expected else {
      throw ChainError.recordLength(chunk: index, expected: expected, actual: try file.size)
    }
    return record
  }

  public func readRecord(
    _ index: Int, slice range: Range<Int>, into buffer: AlignedBuffer
  ) throws -> UnsafeRawBufferPointer {
    let file = try openRecord(index)
    let bytes = try readSpan(
      file, direct: directIO, offset: range.lowerBound, length: range.count, into: buffer)
    guard bytes.count == range.count else {
      throw ChainError.recordLength(
        chunk: index, expected: geometry.recordLength(index), actual: try file.size)
    }
    return bytes
  }

  private func openRecord(_ index: Int) throws -> SystemFile {
    let recordPath = recordPath(index)
    do {
      return try SystemFile(path: recordPath, flags: O_RDONLY | (directIO ? openDirect : 0))
    } catch ChainError.system(let error) where error.errno == ENOENT {
      throw ChainError.missingRecord(chunk: index, path: recordPath)
    }
  }

  public func checkNothingBeyondChain() throws {
    let entries = try FileManager.default.contentsOfDirectory(atPath: path)
    let count = geometry.chunkCount
    let expected = Set((0..<count).lazy.map { FolderSource.recordName($0, chunkCount: count) })
    for entry in entries.sorted() where entry.hasSuffix("." + FolderSource.recordExtension) {
      if !expected.contains(entry) { throw ChainError.extraRecord(path: path + "/" + entry) }
    }
  }
}
