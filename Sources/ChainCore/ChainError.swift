#if canImport(Glibc)
  import Glibc
#endif

/// A failed system call: which call, on which path, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Sendable {
  public let operation: String
  public let path: String
  public let errno: Int32

  public init(_ operation: String, path: String, errno: Int32) {
    self.operation = operation
    self.path = path
    self.errno = errno
  }

  public var description: String {
    "\(path): \(operation): \(String(cString: strerror(errno)))"
  }
}

/// Everything that can go wrong reading or writing a chain.
///
/// Integrity failures (the chain does not prove the bytes) are kept apart from runtime
/// failures (the bytes could not be read or written), because users and scripts must
/// tell "somebody tampered with this" from "the disk is full".
public enum ChainError: Error, CustomStringConvertible, Sendable {
  case system(SystemError)
  case notAChain(path: String, reason: String)
  case outputExists(path: String)
  case invalidArgument(String)
  case interrupted(signal: Int32)

  case corruptHeader(path: String, reason: String)
  case chunkSizeMismatch(claimed: Int, trusted: Int)
  case hashMismatch(chunk: Int, expected: Digest, actual: Digest)
  /// A page of a chunk no longer matches what it held when the chunk was verified.
  case changedAfterCheck(chunk: Int, page: Int)
  case recordLength(chunk: Int, expected: Int, actual: Int)
  case missingRecord(chunk: Int, path: String)
  case extraRecord(path: String)
  case untrustedChunk(chunk: Int, failedChunk: Int)

  /// True when the chain does not verify, as opposed to an I/O or usage failure.
  public var isIntegrityFailure: Bool {
    switch self {
    case .system, .notAChain, .outputExists, .invalidArgument, .interrupted: return false
    default: return true
    }
  }

  /// The chunk a failure is about, when it is about one.
  public var chunk: Int? {
    switch self {
    case .hashMismatch(let chunk, _, _), .changedAfterCheck(let chunk, _),
      .recordLength(let chunk, _, _),
      .missingRecord(let chunk, _), .untrustedChunk(let chunk, _):
      return chunk
    default: return nil
    }
  }

  public var description: String {
    switch self {
    case .system(let error):
      return error.description
    case .notAChain(let path, let reason):
      return "\(path): not a chain: \(reason)"
    case .outputExists(let path):
      return "\(path): already exists (use --force to replace it)"
    case .invalidArgument(let message):
      return message
    case .interrupted(let signal):
      return "interrupted by signal \(signal)"
    case .corruptHeader(let path, let reason):
      return "\(path): corrupt header: \(reason)"
    case .chunkSizeMismatch(let claimed, let trusted):
      return "the chain claims a chunk size of \(claimed) bytes, "
        + "but the trusted chunk size is \(trusted) bytes"
    case .hashMismatch(let chunk, let expected, let actual):
      return "chunk \(chunk): hash mismatch (expected \(expected.hex.prefix(16))…, "
        + "got \(actual.hex.prefix(16))…)"
    case .changedAfterCheck(let chunk, let page):
      return "chunk \(chunk): page \(page) changed in the backing data after the chunk was "
        + "verified"
    case .recordLength(let chunk, let expected, let actual):
      return "chunk \(chunk): record is \(actual) bytes, expected \(expected)"
    case .missingRecord(let chunk, let path):
      return "chunk \(chunk): record missing (\(path))"
    case .extraRecord(let path):
      return "\(path): record beyond the end of the chain"
    case .untrustedChunk(let chunk, let failedChunk):
      return "chunk \(chunk): cannot be trusted, chunk \(failedChunk) before it failed"
    }
  }
}
