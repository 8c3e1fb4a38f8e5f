#if canImport(Glibc)
  import Glibc
#endif

/// An open file descriptor, closed when the last reference goes.
///
/// Every read and write of the project goes through here: short transfers are continued,
/// EINTR is retried, and failures become a `SystemError` naming the call and the path.
public final class SystemFile: @unchecked Sendable {
  public let descriptor: Int32
  public let path: String

  public init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
    let descriptor = retryOnInterrupt { Glibc.open(path, flags | O_CLOEXEC, mode) }
    guard descriptor >= 0 else {
      throw ChainError.system(SystemError("open", path: path, errno: errno))
    }
    self.descriptor = descriptor
    self.path = path
  }

  deinit {
    Glibc.close(descriptor)
  }

  public static func openForReading(_ path: String) throws -> SystemFile {
    try SystemFile(path: path, flags: O_RDONLY)
  }

  public func status() throws -> stat {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { throw error("fstat") }
    return info
  }

  public var size: Int {
    get throws { Int(try status().st_size) }
  }

  /// Reads until `buffer` is full or the file ends; returns the bytes read.
  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
    var done = 0
    while done < buffer.count {
      let count = retryOnInterrupt {
        Glibc.pread(
          descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
      }
      guard count >= 0 else { throw error("read") }
      if count == 0 { break }
      done += count
    }
    return done
  }

  public func write(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws {
    var done = 0
    while done < buffer.count {
      let count = retryOnInterrupt {
        Glibc.pwrite(
          descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
      }
      guard count > 0 else { throw error("write") }
      done += count
    }
  }

  public func truncate(to length: Int) throws {
    guard retryOnInterrupt({ ftruncate(descriptor, off_t(length)) }) == 0 else {
      throw error("truncate")
    }
  }

  /// Tells the kernel how the file will be read; advice only, so failures are ignored.
  public func advise(_ advice: Int32, offset: Int = 0, length: Int = 0) {
    _ = posix_fadvise(descriptor, off_t(offset), off_t(length), advice)
  }

  private func error(_ operation: String) -> ChainError {
    .system(SystemError(operation, path: path, errno: errno))
  }
}

/// Runs a system call again while it fails with EINTR.
@inline(__always)
func retryOnInterrupt<T: BinaryInteger>(_ call: () -> T) -> T {
  while true {
    let result = call()
    if result >= 0 || errno != EINTR { return result }
  }
}

/// The major and minor numbers of a device, decoded as glibc's major() and minor() do:
/// Swift cannot call those macros, and sysfs names a device by the two.
public func deviceNumbers(_ device: dev_t) -> (major: UInt64, minor: UInt64) {
  let bits = UInt64(device)
  return ((bits >> 8) & 0xfff | (bits >> 32) & 0xffff_f000,
    bits & 0xff | (bits >> 12) & 0xffff_ff00)
}

/// The kind of object at `path`, following symbolic links; nil when nothing is there.
public func fileKind(at path: String) -> mode_t? {
  var info = stat()
  guard stat(path, &info) == 0 else { return nil }
  return info.st_mode & S_IFMT
}

/// O_DIRECT, which the Glibc module leaves out because it sits behind _GNU_SOURCE.
#if arch(arm64) || arch(arm)
  public let openDirect: Int32 = 0o200000
#else
  public let openDirect: Int32 = 0o40000
#endif
