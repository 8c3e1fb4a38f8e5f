import CCrypto

/// A SHA-256 digest: the 32 bytes that link one record of a chain to the next.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
  public static let byteCount = 32

  // Four words rather than an array: digests live in large tables (32 bytes a chunk).
  public var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

  public init(bytes: UnsafeRawBufferPointer) {
    precondition(bytes.count == Digest.byteCount)
    w0 = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
    w1 = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    w2 = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
    w3 = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
  }

  public init<C: Collection>(bytes: C) where C.Element == UInt8 {
    let array = Array(bytes)
    self = array.withUnsafeBytes { Digest(bytes: $0) }
  }

  /// Parses 64 hexadecimal characters, either case; nil for anything else.
  public init?(hex: String) {
    let scalars = Array(hex.utf8)
    guard scalars.count == 2 * Digest.byteCount else { return nil }
    var bytes = [UInt8](repeating: 0, count: Digest.byteCount)
    for index in 0..<Digest.byteCount {
      guard let high = Digest.nibble(scalars[2 * index]),
        let low = Digest.nibble(scalars[2 * index + 1])
      else { return nil }
      bytes[index] = high << 4 | low
    }
    self.init(bytes: bytes)
  }

  /// Calls `body` with the digest's 32 bytes in order.
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var copy = (w0, w1, w2, w3)
    return try Swift.withUnsafeBytes(of: &copy) { try body($0) }
  }

  public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

  /// Lowercase hexadecimal, 64 characters: the form users copy and paste.
  public var hex: String {
    let digits = Array("0123456789abcdef".utf8)
    var text = [UInt8]()
    text.reserveCapacity(2 * Digest.byteCount)
    withUnsafeBytes { raw in
      for byte in raw {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
      }
    }
    return String(decoding: text, as: UTF8.self)
  }

  public var description: String { hex }

  private static func nibble(_ character: UInt8) -> UInt8? {
    switch character {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return character - UInt8(ascii: "A") + 10
    default: return nil
    }
  }
}

/// An incremental SHA-256 computation.
///
/// It hides OpenSSL's EVP interface, which picks the CPU's SHA instructions where they
/// exist. One hasher absorbs the bulk of a chunk on a worker thread and can be finished
/// later, in chain order, once the next chunk's digest is known.
public final class SHA256 {
  // Fetching the algorithm once spares every init a lookup and a lock in libcrypto.
  nonisolated(unsafe) private static let algorithm: OpaquePointer = {
    guard let md = EVP_MD_fetch(nil, "SHA256", nil) else {
      fatalError("libcrypto provides no SHA-256")
    }
    return md
  }()

  private let context: OpaquePointer

  public init() {
    guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: out of memory") }
    self.context = context
    reset()
  }

  deinit {
    EVP_MD_CTX_free(context)
  }

  /// Starts a new digest, so that one hasher can serve many chunks.
  public func reset() {
    guard EVP_DigestInit_ex(context, SHA256.algorithm, nil) == 1 else {
      fatalError("libcrypto: cannot start SHA-256")
    }
  }

  public func update(_ bytes: UnsafeRawBufferPointer) {
    guard bytes.count > 0 else { return }
    guard EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1 else {
      fatalError("libcrypto: SHA-256 update failed")
    }
  }

  public func update(_ digest: Digest) {
    digest.withUnsafeBytes { update($0) }
  }

  /// Ends the digest; call `reset()` before using the hasher again.
  public func finish() -> Digest {
    var output = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    var length: UInt32 = 0
    let status = withUnsafeMutableBytes(of: &output) { raw in
      EVP_DigestFinal_ex(context, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
    }
    guard status == 1, length == UInt32(Digest.byteCount) else {
      fatalError("libcrypto: SHA-256 final failed")
    }
    return withUnsafeBytes(of: &output) { Digest(bytes: $0) }
  }

  /// The digest of one contiguous buffer.
  public static func hash(_ bytes: UnsafeRawBufferPointer) -> Digest {
    let hasher = SHA256()
    hasher.update(bytes)
    return hasher.finish()
  }

  public static func hash<C: Collection>(_ bytes: C) -> Digest where C.Element == UInt8 {
    Array(bytes).withUnsafeBytes { hash($0) }
  }
}
