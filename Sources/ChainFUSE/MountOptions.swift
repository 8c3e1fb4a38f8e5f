import ChainCore

#if canImport(Glibc)
  import Glibc
#endif

/// When a mounted chain is checked beyond what reads need.
public enum VerifyMode: String, CaseIterable, Sendable {
  /// Only what is read, and the records before it that are needed to trust it.
  case lazy
  /// Also extends the verified frontier to the end at low priority after mounting.
  case background
  /// Checks the whole chain before the mount appears; a chain that fails is not mounted.
  case full
}

/// Everything `-o` can say, split into chainfs's own options and libfuse's.
public struct MountOptions: Sendable {
  public var store = StoreOptions()
  public var verify = VerifyMode.lazy
  public var directIO = false
  /// The kernel's readahead for the mount, in bytes, if asked for; 0 leaves the kernel's.
  public var kernelReadahead: Int?
  public var debug = false
  public var root: Digest?
  public var chunkSize: Int?
  /// The owner shown for the folder and the file; the mounting user's by default.
  public var owner: (uid: UInt32, gid: UInt32) = (getuid(), getgid())
  /// Options passed to libfuse and the kernel unchanged (allow_other, max_read=N, ...).
  public var fuseOptions: [String] = []

  public init() {}

  /// Options that mount(8) and fstab add for every filesystem; they mean nothing here.
  static let ignored: Set<String> = [
    "rw", "ro", "defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev",
    "exec", "noexec", "suid", "nosuid", "dev", "nodev",
  ]

  /// Parses comma-separated `-o` lists; returns a message for the first bad value.
  public mutating func parse(_ lists: [String]) -> String? {
    for item in lists.flatMap({ $0.split(separator: ",").map(String.init) }) {
      let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
      let key = parts[0]
      let value = parts.count > 1 ? parts[1] : nil
      switch key {
      case "cache_size":
        guard let size = value.flatMap(ByteSize.parse), size > 0 else {
          return "cache_size: expected a size such as 256M"
        }
        store.cacheBudget = size
      case "readahead":
        guard let count = value.flatMap({ Int($0) }), (0...1024).contains(count) else {
          return "readahead: expected 0 to 1024 chunks"
        }
        store.readahead = count
      case "jobs":
        guard let count = value.flatMap({ Int($0) }), (1...256).contains(count) else {
          return "jobs: expected 1 to 256"
        }
        store.jobs = count
      case "verify":
        guard let mode = value.flatMap(VerifyMode.init(rawValue:)) else {
          return "verify: expected lazy, background or full"
        }
        verify = mode
      case "kernel_readahead":
        guard let size = value.flatMap(ByteSize.parse), size <= 64 << 20 else {
          return "kernel_readahead: expected a size from 0 to 64M, such as 512K"
        }
        kernelReadahead = size
      case "odirect", "direct_backing":
        directIO = true
      case "root":
        guard let digest = value.flatMap(Digest.init(hex:)) else {
          return "root: expected 64 hexadecimal characters"
        }
        root = digest
      case "chunk_size":
        guard let size = value.flatMap(ByteSize.parse), size > 0 else {
          return "chunk_size: expected a size such as 1M"
        }
        chunkSize = size
      case "uid", "gid":
        guard let id = value.flatMap({ UInt32($0) }) else { return "\(key): expected a number" }
        if key == "uid" { owner.uid = id } else { owner.gid = id }
      case "debug":
        debug = true
        fuseOptions.append(item)
      case _ where MountOptions.ignored.contains(key) || key.hasPrefix("x-") || key == "comment":
        continue
      default:
        fuseOptions.append(item)
      }
    }
    return nil
  }
}
