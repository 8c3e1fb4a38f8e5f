#if canImport(Glibc)
  import Glibc
#endif

/// Page-aligned memory that records are read into.
///
/// Alignment lets the same buffer serve reads with O_DIRECT, which the kernel only
/// accepts into aligned memory, at aligned offsets, for aligned lengths.
public final class AlignedBuffer: @unchecked Sendable {
  public static let alignment = 4096

  public let bytes: UnsafeMutableRawBufferPointer

  public init(capacity: Int) {
    var pointer: UnsafeMutableRawPointer?
    let rounded = max(AlignedBuffer.alignment, AlignedBuffer.roundUp(capacity))
    guard posix_memalign(&pointer, AlignedBuffer.alignment, rounded) == 0, let pointer else {
      fatalError("out of memory allocating \(rounded) bytes")
    }
    bytes = UnsafeMutableRawBufferPointer(start: pointer, count: rounded)
  }

  deinit {
    free(bytes.baseAddress)
  }

  public var capacity: Int { bytes.count }

  public static func roundUp(_ value: Int) -> Int {
    (value + alignment - 1) / alignment * alignment
  }

  public static func roundDown(_ value: Int) -> Int {
    value / alignment * alignment
  }
}
