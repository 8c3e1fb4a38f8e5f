/// The shape of a chain: how a file of `fileSize` bytes splits into records.
///
/// Every non-last record is a chunk followed by the next record's digest
/// (`chunkSize + 32` bytes); the last record is the final chunk alone.
public struct ChainGeometry: Equatable, Sendable {
  public static let maximumChunkSize = 1 << 30
  /// 2^62 bytes: far beyond any real file. Headers are also refused when the records
  /// would take more than this (chunks under 32 bytes), so no offset sum overflows.
  public static let maximumFileSize = 1 << 62

  public let chunkSize: Int
  public let fileSize: Int

  public init(chunkSize: Int, fileSize: Int) {
    precondition(chunkSize >= 1 && chunkSize <= ChainGeometry.maximumChunkSize)
    precondition(fileSize >= 0 && fileSize <= ChainGeometry.maximumFileSize)
    self.chunkSize = chunkSize
    self.fileSize = fileSize
  }

  /// An empty file is one empty chunk, so every chain has a root.
  public var chunkCount: Int { fileSize == 0 ? 1 : (fileSize - 1) / chunkSize + 1 }

  public var lastChunk: Int { chunkCount - 1 }

  public var recordStride: Int { chunkSize + Digest.byteCount }

  /// Where chunk `index` starts in the original file.
  public func chunkOffset(_ index: Int) -> Int { index * chunkSize }

  public func chunkLength(_ index: Int) -> Int {
    index == lastChunk ? fileSize - index * chunkSize : chunkSize
  }

  /// A record holds its chunk and, unless it is the last, the next chunk's digest.
  public func recordLength(_ index: Int) -> Int {
    index == lastChunk ? chunkLength(index) : recordStride
  }

  /// Total bytes of all records, as laid out back to back in an archive.
  public var recordsLength: Int { lastChunk * recordStride + chunkLength(lastChunk) }

  /// The chunks that hold bytes `offset ..< offset + length` of the original file.
  public func chunks(covering offset: Int, length: Int) -> ClosedRange<Int> {
    let first = min(offset / chunkSize, lastChunk)
    let last = min((offset + max(length, 1) - 1) / chunkSize, lastChunk)
    return first...last
  }
}

/// The metadata of a chain: the manifest of a folder, the header of an archive.
///
/// Both are the same bytes (docs/FORMAT.md). Everything here except the root and the
/// chunk size is advisory until the chain is checked: the root and chunk size, trusted
/// from outside, pin every record, and the records pin the file size.
public struct ChainHeader: Equatable, Sendable {
  public static let magic: [UInt8] = Array("CHAINFS".utf8) + [0]
  public static let version: UInt16 = 1
  public static let sha256Identifier: UInt16 = 1
  public static let fixedLength = 88
  public static let maximumNameLength = 4096
  public static let maximumLength = encodedLength(nameLength: maximumNameLength)

  public var geometry: ChainGeometry
  public var name: String
  public var modificationSeconds: Int64
  public var modificationNanoseconds: UInt32
  public var root: Digest

  public init(
    geometry: ChainGeometry, name: String, modificationSeconds: Int64,
    modificationNanoseconds: UInt32, root: Digest
  ) {
    self.geometry = geometry
    self.name = name
    self.modificationSeconds = modificationSeconds
    self.modificationNanoseconds = modificationNanoseconds
    self.root = root
  }

  public var chunkSize: Int { geometry.chunkSize }
  public var fileSize: Int { geometry.fileSize }
  public var chunkCount: Int { geometry.chunkCount }

  /// The serialized length, which depends only on the name: an encoder knows it
  /// before the root, so the records' offsets are fixed from the start.
  public static func encodedLength(nameLength: Int) -> Int {
    (fixedLength + nameLength + 7) / 8 * 8 + Digest.byteCount
  }

  public var encodedLength: Int { ChainHeader.encodedLength(nameLength: name.utf8.count) }

  /// The bytes of the header, ending with its own SHA-256 checksum.
  public func encoded() -> [UInt8] {
    var bytes = ChainHeader.magic
    bytes.appendLittleEndian(ChainHeader.version)
    bytes.appendLittleEndian(ChainHeader.sha256Identifier)
    bytes.appendLittleEndian(UInt32(encodedLength))
    bytes.appendLittleEndian(UInt64(geometry.chunkSize))
    bytes.appendLittleEndian(UInt64(geometry.fileSize))
    bytes.appendLittleEndian(UInt64(geometry.chunkCount))
    bytes.appendLittleEndian(UInt64(bitPattern: modificationSeconds))
    bytes.appendLittleEndian(modificationNanoseconds)
    bytes.appendLittleEndian(UInt16(name.utf8.count))
    bytes.appendLittleEndian(UInt16(0))
    bytes += root.bytes
    bytes += Array(name.utf8)
    bytes += [UInt8](repeating: 0, count: encodedLength - Digest.byteCount - bytes.count)
    bytes += SHA256.hash(bytes).bytes
    return bytes
  }

  /// How many bytes to read to be sure of holding the whole header.
  public static func declaredLength(prefix: [UInt8], path: String) throws -> Int {
    guard prefix.count >= magic.count, Array(prefix[0..<magic.count]) == magic else {
      throw ChainError.notAChain(path: path, reason: "no chainfs header")
    }
    guard prefix.count >= 16 else {
      throw ChainError.corruptHeader(path: path, reason: "truncated (\(prefix.count) bytes)")
    }
    let length = Int(prefix.littleEndian(UInt32.self, at: 12))
    guard length >= encodedLength(nameLength: 1), length <= maximumLength else {
      throw ChainError.corruptHeader(path: path, reason: "header length \(length) out of range")
    }
    return length
  }

  /// Parses untrusted bytes: every field is checked before it is used.
  public init(decoding bytes: [UInt8], path: String) throws {
    func corrupt(_ reason: String) -> ChainError { .corruptHeader(path: path, reason: reason) }

    let length = try ChainHeader.declaredLength(prefix: bytes, path: path)
    guard bytes.count >= length else {
      throw corrupt("truncated (\(bytes.count) of \(length) bytes)")
    }
    let body = Array(bytes[0..<(length - Digest.byteCount)])
    let checksum = Digest(bytes: bytes[(length - Digest.byteCount)..<length])
    guard SHA256.hash(body) == checksum else { throw corrupt("checksum does not match") }

    let version = bytes.littleEndian(UInt16.self, at: 8)
    guard version == ChainHeader.version else { throw corrupt("unsupported version \(version)") }
    let hash = bytes.littleEndian(UInt16.self, at: 10)
    guard hash == ChainHeader.sha256Identifier else {
      throw corrupt("unknown hash function \(hash)")
    }

    let chunkSize = bytes.littleEndian(UInt64.self, at: 16)
    guard chunkSize >= 1, chunkSize <= UInt64(ChainGeometry.maximumChunkSize) else {
      throw corrupt("chunk size \(chunkSize) out of range (1 B to 1 GiB)")
    }
    let fileSize = bytes.littleEndian(UInt64.self, at: 24)
    guard fileSize <= UInt64(ChainGeometry.maximumFileSize) else {
      throw corrupt("file size \(fileSize) out of range")
    }
    let geometry = ChainGeometry(chunkSize: Int(chunkSize), fileSize: Int(fileSize))
    let (records, overflow) = geometry.lastChunk.multipliedReportingOverflow(
      by: geometry.recordStride)
    guard !overflow, records <= ChainGeometry.maximumFileSize else {
      throw corrupt(
        "\(fileSize) bytes in \(chunkSize)-byte chunks take more than 2^62 bytes of records")
    }
    let chunkCount = bytes.littleEndian(UInt64.self, at: 32)
    guard chunkCount == UInt64(geometry.chunkCount) else {
      throw corrupt(
        "\(chunkCount) chunks do not fit a \(fileSize)-byte file in \(chunkSize)-byte chunks")
    }

    let seconds = Int64(bitPattern: bytes.littleEndian(UInt64.self, at: 40))
    let nanoseconds = bytes.littleEndian(UInt32.self, at: 48)
    guard nanoseconds < 1_000_000_000 else { throw corrupt("modification time out of range") }
    let nameLength = Int(bytes.littleEndian(UInt16.self, at: 52))
    guard bytes.littleEndian(UInt16.self, at: 54) == 0 else { throw corrupt("unknown flags") }
    guard nameLength >= 1, ChainHeader.encodedLength(nameLength: nameLength) == length else {
      throw corrupt("name length \(nameLength) does not match header length \(length)")
    }
    let nameStart = ChainHeader.fixedLength
    let nameBytes = bytes[nameStart..<(nameStart + nameLength)]
    guard let name = String(validating: nameBytes, as: UTF8.self), ChainHeader.isSafeName(name)
    else { throw corrupt("file name is not a plain name") }
    guard bytes[(nameStart + nameLength)..<(length - Digest.byteCount)].allSatisfy({ $0 == 0 })
    else {
      throw corrupt("padding is not zero")
    }

    self.init(
      geometry: geometry, name: name, modificationSeconds: seconds,
      modificationNanoseconds: nanoseconds, root: Digest(bytes: bytes[56..<88]))
  }

  /// A name that can only ever mean one file in the current folder.
  public static func isSafeName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    return !bytes.isEmpty && bytes.count <= maximumNameLength && name != "." && name != ".."
      && !bytes.contains(UInt8(ascii: "/"))
      && !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
  }
}

extension Array where Element == UInt8 {
  mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }

  func littleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
    var value = T.zero
    for index in (0..<MemoryLayout<T>.size).reversed() {
      value = value << 8 | T(self[offset + index])
    }
    return value
  }
}
