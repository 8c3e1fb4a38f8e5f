import CFuse
import ChainCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Serves one chain as a read-only folder holding one regular file, over libfuse's
/// low-level API with the multi-threaded session loop.
///
/// Each handler computes a `Reply`; `send` is the one place that answers the kernel, so
/// every request is answered exactly once. Integrity failures become EIO at this edge.
public final class FuseServer: @unchecked Sendable {
  static let rootInode: fuse_ino_t = 1
  static let fileInode: fuse_ino_t = 2
  /// The content never changes, so the kernel may keep names, attributes and pages.
  static let cacheSeconds = 86400.0

  /// Large enough that a sequential reader's requests are a chunk of 1 MiB at a time, yet
  /// with no more than two in flight: more kept both processors copying replies into the
  /// page cache while the reader waited for the oldest one.
  static let defaultKernelReadahead = 512 << 10

  public let store: ChunkStore
  private let header: ChainHeader
  private let uid: uid_t
  private let gid: gid_t
  private let largestRead: Int
  /// The readahead asked for with `kernel_readahead`, or nil for the default.
  private let kernelReadahead: Int?
  private var session: OpaquePointer?
  private let kernelCopyQueue = DispatchQueue(label: "chainfs.kernel-copy", qos: .utility)

  public init(
    store: ChunkStore, owner: (uid: UInt32, gid: UInt32), largestRead: Int = 1 << 20,
    kernelReadahead: Int? = nil
  ) {
    self.store = store
    self.header = store.source.header
    (uid, gid) = owner
    self.largestRead = largestRead
    self.kernelReadahead = kernelReadahead
  }

  // MARK: Attributes

  private func attributes(_ inode: fuse_ino_t) -> stat? {
    var info = stat()
    info.st_ino = __ino_t(inode)
    info.st_uid = uid
    info.st_gid = gid
    let time = timespec(
      tv_sec: Int(header.modificationSeconds), tv_nsec: Int(header.modificationNanoseconds))
    info.st_mtim = time
    info.st_ctim = time
    info.st_atim = time
    switch inode {
    case FuseServer.rootInode:
      info.st_mode = S_IFDIR | 0o555
      info.st_nlink = 2
    case FuseServer.fileInode:
      info.st_mode = S_IFREG | 0o444
      info.st_nlink = 1
      info.st_size = off_t(header.fileSize)
      info.st_blocks = blkcnt_t((header.fileSize + 511) / 512)
      info.st_blksize = blksize_t(min(header.chunkSize, 1 << 20))
    default:
      return nil
    }
    return info
  }

  private func entry(_ inode: fuse_ino_t) -> fuse_entry_param? {
    guard let info = attributes(inode) else { return nil }
    var entry = fuse_entry_param()
    entry.ino = inode
    entry.attr = info
    entry.attr_timeout = FuseServer.cacheSeconds
    entry.entry_timeout = FuseServer.cacheSeconds
    return entry
  }

  // MARK: Handlers

  enum Reply {
    case error(Int32)
    case entry(fuse_entry_param)
    case attributes(stat)
    case open(fuse_file_info)
    case bytes([UInt8])
    case chunks([VerifiedChunk], [iovec])
    case statfs(statvfs)
  }

  func lookup(parent: fuse_ino_t, name: String) -> Reply {
    guard parent == FuseServer.rootInode, name == header.name,
      let entry = entry(FuseServer.fileInode)
    else { return .error(ENOENT) }
    return .entry(entry)
  }

  func getattr(_ inode: fuse_ino_t) -> Reply {
    guard let info = attributes(inode) else { return .error(ENOENT) }
    return .attributes(info)
  }

  func open(_ inode: fuse_ino_t, _ info: fuse_file_info) -> Reply {
    guard inode == FuseServer.fileInode else { return .error(EISDIR) }
    guard info.flags & O_ACCMODE == O_RDONLY else { return .error(EROFS) }
    var reply = info
    reply.keep_cache = 1
    // Two of the largest requests, in chunks, however small the chunks.
    let slack = 2 * ((largestRead + store.geometry.chunkSize - 1) / store.geometry.chunkSize)
    let stream = ReadStream(bypassesPageCache: info.flags & openDirect != 0, slack: slack)
    reply.fh = UInt64(UInt(bitPattern: Unmanaged.passRetained(stream).toOpaque()))
    return .open(reply)
  }

  func release(_ info: fuse_file_info) -> Reply {
    if let stream = ReadStream.from(info) { Unmanaged.passUnretained(stream).release() }
    return .error(0)
  }

  func read(size: Int, offset: Int, stream: ReadStream?) -> Reply {
    guard offset < header.fileSize, size > 0 else { return .bytes([]) }
    let end = min(offset + size, header.fileSize)
    let geometry = store.geometry
    let indexes = geometry.chunks(covering: offset, length: end - offset)
    let sequential = stream?.isSequential(indexes) ?? false
    if sequential { store.readAhead(after: indexes.upperBound) }
    // A read over several chunks hashes them on several threads, not one after another.
    if indexes.count > 1 { store.prefetch((indexes.lowerBound + 1)...indexes.upperBound) }

    // A reader that bypasses the page cache comes back to the driver for every read: its
    // small random reads may need only the pages that hold them. Any other reader is
    // better served by whole chunks, which go on to the page cache.
    let bypassing = stream?.bypassesPageCache ?? false
    let small =
      bypassing && !sequential && indexes.count == 1 && end - offset <= geometry.chunkSize / 4
    var chunks: [VerifiedChunk] = []
    var pieces: [iovec] = []
    do {
      for index in indexes {
        let chunkStart = geometry.chunkOffset(index)
        let chunkEnd = chunkStart + geometry.chunkLength(index)
        let wanted = (max(offset, chunkStart) - chunkStart)..<(min(end, chunkEnd) - chunkStart)
        let chunk = small ? try store.bytes(of: index, in: wanted) : try store.chunk(index)
        chunks.append(chunk)
        pieces.append(
          iovec(
            iov_base: UnsafeMutableRawPointer(
              mutating: chunk.bytes.baseAddress! + (wanted.lowerBound - chunk.offset)),
            iov_len: wanted.count))
      }
    } catch let error as ChainError where error.isIntegrityFailure {
      return .error(EIO)
    } catch {
      Log.shared.error("read at offset \(offset): \(error)")
      return .error(EIO)
    }
    if bypassing {
      if !sequential { chunks.forEach(store.rememberPages) }
    } else if sequential {
      chunks.forEach { $0.noteKernelCopy() }
    } else {
      copyToKernel(chunks)
    }
    return .chunks(chunks, pieces)
  }

  /// Hands whole verified chunks to the kernel's page cache after a random read.
  ///
  /// A random reader asks for a page or two, but verifying them cost hashing the whole
  /// chunk. Storing all of it in the page cache lets later reads nearby be served by the
  /// kernel alone. It runs on its own queue, never on a loop thread: storing locks the
  /// pages, and the pages a read asked for stay locked until that read is answered.
  private func copyToKernel(_ chunks: [VerifiedChunk]) {
    let fresh = chunks.filter { $0.claimKernelCopy() }
    guard !fresh.isEmpty else { return }
    let geometry = store.geometry
    kernelCopyQueue.async { [self] in
      // The session is only read here, on this queue, which clears it before it ends.
      guard let session else { return }
      for chunk in fresh {
        let memory = UnsafeMutableRawPointer(mutating: chunk.bytes.baseAddress!)
        let buffer = fuse_buf(
          size: chunk.bytes.count, flags: fuse_buf_flags(0), mem: memory, fd: -1, pos: 0)
        var vector = fuse_bufvec(count: 1, idx: 0, off: 0, buf: buffer)
        let offset = off_t(geometry.chunkOffset(chunk.index))
        _ = fuse_lowlevel_notify_store(
          session, FuseServer.fileInode, offset, &vector, fuse_buf_copy_flags(0))
      }
    }
  }

  func readdir(_ inode: fuse_ino_t, request: fuse_req_t, size: Int, offset: Int) -> Reply {
    guard inode == FuseServer.rootInode else { return .error(ENOTDIR) }
    var listing: [UInt8] = []
    let names: [(String, fuse_ino_t)] = [
      (".", FuseServer.rootInode), ("..", FuseServer.rootInode),
      (header.name, FuseServer.fileInode),
    ]
    for (position, (name, inode)) in names.enumerated() where position >= offset {
      var info = attributes(inode)!
      let needed = fuse_add_direntry(request, nil, 0, name, nil, 0)
      guard listing.count + needed <= size else { break }
      let start = listing.count
      listing += [UInt8](repeating: 0, count: needed)
      listing.withUnsafeMutableBufferPointer { buffer in
        let pointer = UnsafeMutableRawPointer(buffer.baseAddress! + start).assumingMemoryBound(
          to: CChar.self)
        _ = fuse_add_direntry(request, pointer, needed, name, &info, off_t(position + 1))
      }
    }
    return .bytes(listing)
  }

  func statfs() -> Reply {
    var info = statvfs()
    info.f_bsize = UInt(min(header.chunkSize, 1 << 20))
    info.f_frsize = info.f_bsize
    info.f_blocks = fsblkcnt_t((header.fileSize + Int(info.f_bsize) - 1) / Int(info.f_bsize))
    info.f_files = 2
    info.f_namemax = 255
    return .statfs(info)
  }

  /// The one place that answers the kernel.
  func send(_ reply: Reply, to request: fuse_req_t) {
    switch reply {
    case .error(let code): fuse_reply_err(request, code)
    case .entry(var entry): fuse_reply_entry(request, &entry)
    case .attributes(var info): fuse_reply_attr(request, &info, FuseServer.cacheSeconds)
    case .open(var info): fuse_reply_open(request, &info)
    case .bytes(let bytes):
      _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(request, $0.baseAddress, $0.count) }
    case .chunks(let chunks, let pieces):
      withExtendedLifetime(chunks) {
        _ = pieces.withUnsafeBufferPointer {
          fuse_reply_iov(request, $0.baseAddress, Int32($0.count))
        }
      }
    case .statfs(var info): fuse_reply_statfs(request, &info)
    }
  }

  // MARK: Session

  static func from(_ request: fuse_req_t?) -> FuseServer {
    Unmanaged<FuseServer>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
  }

  /// Mounts at `mountpoint` and serves until unmounted or signalled. `ready` is called on
  /// another thread once the file can be read through the mount.
  public func serve(mountpoint: String, fuseOptions: [String], ready: @escaping (Error?) -> Void)
    throws
  {
    var operations = FuseServer.operations()
    let userdata = Unmanaged.passUnretained(self).toOpaque()
    guard let session = FuseServer.makeSession(fuseOptions, &operations, userdata: userdata) else {
      throw ChainError.invalidArgument("libfuse refused the mount options")
    }
    self.session = session
    defer { fuse_session_destroy(session) }

    guard fuse_set_signal_handlers(session) == 0 else {
      throw ChainError.invalidArgument("cannot install signal handlers")
    }
    defer { fuse_remove_signal_handlers(session) }
    guard fuse_session_mount(session, mountpoint) == 0 else {
      throw ChainError.invalidArgument("\(mountpoint): mount failed")
    }
    defer { fuse_session_unmount(session) }

    let filePath = mountpoint + "/" + header.name
    Thread.detachNewThread { [self] in
      setKernelReadahead(mountpoint: mountpoint)
      var info = stat()
      if stat(filePath, &info) == 0 {
        ready(nil)
      } else {
        ready(ChainError.system(SystemError("stat", path: filePath, errno: errno)))
        kill(getpid(), SIGTERM)
      }
    }

    let config = fuse_loop_cfg_create()
    defer { fuse_loop_cfg_destroy(config) }
    fuse_loop_cfg_set_max_threads(config, 16)
    let status = chainfs_session_loop_mt(session, config)
    kernelCopyQueue.sync { self.session = nil }
    if status < 0 {
      Log.shared.error("session loop ended: \(String(cString: strerror(-status)))")
    }
  }

  /// Sets the kernel's readahead for this mount before any reader opens the file.
  ///
  /// The kernel keeps a FUSE mount's readahead at 128 KiB, whatever `max_readahead` says,
  /// so a sequential reader's requests stay small and many. The setting lives in sysfs,
  /// where only root may write it; anyone else keeps the kernel's default, and is warned
  /// only if they asked for another.
  private func setKernelReadahead(mountpoint: String) {
    let bytes = kernelReadahead ?? FuseServer.defaultKernelReadahead
    guard bytes > 0 else { return }
    var info = stat()
    guard stat(mountpoint, &info) == 0 else { return }
    let (major, minor) = deviceNumbers(info.st_dev)
    // Only this mount's own device: FUSE's root inode on an anonymous (major 0) device,
    // never the disk under the mount point.
    guard major == 0, info.st_ino == FuseServer.rootInode else {
      Log.shared.debug("kernel readahead left alone: \(mountpoint) is not this mount")
      return
    }
    let path = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
    do {
      let setting = try SystemFile(path: path, flags: O_WRONLY)
      let text = Array("\((bytes + 1023) >> 10)\n".utf8)
      try text.withUnsafeBytes { try setting.write($0, at: 0) }
    } catch {
      let message = "kernel readahead left at its default: \(error)"
      if kernelReadahead == nil { Log.shared.debug(message) } else { Log.shared.warning(message) }
    }
  }

  /// Whether libfuse accepts `fuseOptions`, asked without mounting anything. libfuse
  /// names any option it refuses on standard error.
  public static func acceptsOptions(_ fuseOptions: [String]) -> Bool {
    var operations = fuse_lowlevel_ops()
    guard let session = makeSession(fuseOptions, &operations, userdata: nil) else { return false }
    fuse_session_destroy(session)
    return true
  }

  /// A session for `fuseOptions`, or nil when libfuse refuses them. libfuse copies what it
  /// keeps of the arguments, so they are freed here.
  private static func makeSession(
    _ fuseOptions: [String], _ operations: inout fuse_lowlevel_ops,
    userdata: UnsafeMutableRawPointer?
  ) -> OpaquePointer? {
    var arguments = fuse_args(argc: 0, argv: nil, allocated: 0)
    defer { fuse_opt_free_args(&arguments) }
    for argument in ["chainfs"] + fuseOptions.flatMap({ ["-o", $0] }) {
      fuse_opt_add_arg(&arguments, argument)
    }
    return fuse_session_new(
      &arguments, &operations, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
  }

  private static func operations() -> fuse_lowlevel_ops {
    var operations = fuse_lowlevel_ops()
    operations.`init` = { userdata, connection in
      guard let connection else { return }
      let server = Unmanaged<FuseServer>.fromOpaque(userdata!).takeUnretainedValue()
      // libfuse derives the kernel's largest request (max_pages) from max_write.
      connection.pointee.max_write = UInt32(server.largestRead)
      connection.pointee.max_readahead = UInt32(server.largestRead)
      connection.pointee.want |= connection.pointee.capable & UInt32(FUSE_CAP_ASYNC_READ)
    }
    operations.lookup = { request, parent, name in
      let server = FuseServer.from(request)
      server.send(server.lookup(parent: parent, name: String(cString: name!)), to: request!)
    }
    operations.getattr = { request, inode, _ in
      let server = FuseServer.from(request)
      server.send(server.getattr(inode), to: request!)
    }
    operations.open = { request, inode, info in
      let server = FuseServer.from(request)
      server.send(server.open(inode, info!.pointee), to: request!)
    }
    operations.release = { request, _, info in
      let server = FuseServer.from(request)
      server.send(server.release(info!.pointee), to: request!)
    }
    operations.read = { request, _, size, offset, info in
      let server = FuseServer.from(request)
      let stream = info.flatMap { ReadStream.from($0.pointee) }
      server.send(server.read(size: size, offset: Int(offset), stream: stream), to: request!)
    }
    operations.readdir = { request, inode, size, offset, _ in
      let server = FuseServer.from(request)
      server.send(
        server.readdir(inode, request: request!, size: size, offset: Int(offset)), to: request!)
    }
    operations.statfs = { request, _ in
      let server = FuseServer.from(request)
      server.send(server.statfs(), to: request!)
    }
    operations.setattr = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.write = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.create = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.mknod = { request, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.mkdir = { request, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.unlink = { request, _, _ in fuse_reply_err(request, EROFS) }
    operations.rmdir = { request, _, _ in fuse_reply_err(request, EROFS) }
    operations.rename = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.symlink = { request, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.link = { request, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.setxattr = { request, _, _, _, _, _ in fuse_reply_err(request, EROFS) }
    operations.removexattr = { request, _, _ in fuse_reply_err(request, EROFS) }
    return operations
  }
}

/// Per-open-file state: where the last read ended, to tell a sequential reader.
final class ReadStream: @unchecked Sendable {
  /// Opened with O_DIRECT: its reads skip the page cache, so filling it would be waste.
  let bypassesPageCache: Bool
  /// How many chunks before or after the furthest one read so far a read may start and
  /// still continue the stream: the kernel's readahead keeps several requests in flight,
  /// and the loop's threads answer them in any order.
  let slack: Int
  private let lock = NSLock()
  private var furthestChunk: Int?

  init(bypassesPageCache: Bool, slack: Int) {
    self.bypassesPageCache = bypassesPageCache
    self.slack = max(1, slack)
  }

  static func from(_ info: fuse_file_info) -> ReadStream? {
    guard info.fh != 0, let pointer = UnsafeRawPointer(bitPattern: UInt(info.fh)) else {
      return nil
    }
    return Unmanaged<ReadStream>.fromOpaque(pointer).takeUnretainedValue()
  }

  /// True when this read starts near where the stream has got to, or the stream's first read
  /// starts the file; any other read is a seek, and the stream continues from there.
  func isSequential(_ chunks: ClosedRange<Int>) -> Bool {
    lock.withLock {
      guard let furthest = furthestChunk else {
        furthestChunk = chunks.upperBound
        return chunks.lowerBound == 0
      }
      let sequential = abs(chunks.lowerBound - furthest) <= slack
      furthestChunk = sequential ? max(furthest, chunks.upperBound) : chunks.upperBound
      return sequential
    }
  }
}
