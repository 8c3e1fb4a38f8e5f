import ChainCore
import ChainFUSE
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

enum MountCommand: Command {
  static let name = "mount"
  static let summary = "serve the verified file through FUSE"
  static let options: [OptionSpec] =
    CommonOptions.trust + [
      .flag("--foreground", "-f"), .value("-o"), .flag("--logs"), .flag("--quiet", "-q"),
      .flag("-d"), .value("--ready-fd"),
    ]

  static let help = """
    Usage: chainfs mount SOURCE MOUNTPOINT [--root HEX] [--chunk-size SIZE] [-f]
                         [-o OPTION[,OPTION...]] [--logs] [--quiet]

    Serves the chain in SOURCE (a chain folder or a .chain archive) at MOUNTPOINT, an
    existing folder, as one read-only file under its original name. Chunks are read,
    verified against the root and cached only when they are read; a byte that does not
    verify is never served: the read fails with EIO and the mount stays up.

    Without -f the command returns once the file is readable and the driver goes on in
    the background, logging to syslog. Unmount with 'fusermount3 -u MOUNTPOINT' (or
    'umount MOUNTPOINT' as root); SIGINT and SIGTERM unmount too.

    Options:
      --root HEX           the trusted root, as printed by encode; without it the chain's
                           own recorded root is used, which catches accidental corruption
                           but not tampering
      --chunk-size SIZE    the trusted chunk size (default 1M when a root is given)
      -f, --foreground     stay in the foreground, logging to standard error
      -d                   -o debug and -f: log every FUSE request
      --logs               log more: each stretch of records verified to reach a seek,
                           the end of background verification
      -q, --quiet          log only errors

    Mount options (-o, comma-separated):
      root=HEX             the same as --root
      chunk_size=SIZE      the same as --chunk-size
      cache_size=SIZE      memory for verified chunks and, a quarter of it, for the
                           page digests that let random reads come back cheaply
                           (default 64M; never less than the readahead window and
                           two chunks more)
      readahead=N          chunks read and verified ahead of a sequential reader
                           (default: 8 MiB worth, at least 2)
      verify=MODE          lazy (default): check what is read, and the records before
                           it; background: also check the rest at low priority; full:
                           check the whole chain before mounting, refuse if it fails
      jobs=N               threads hashing when many records must be checked at once
      kernel_readahead=SIZE
                           the kernel's readahead for the mount (default 512K, which
                           lets it ask for 1 MiB at a time; 0 keeps the kernel's 128K);
                           only root may change it
      uid=N, gid=N         the owner shown for the folder and the file (default: yours)
      odirect              read the backing data with O_DIRECT, bypassing the page cache,
                           so that it is not cached twice
      allow_other          let other users read the mount (needs user_allow_other in
                           /etc/fuse.conf for non-root users)
      debug                log every FUSE request (use with -f)
      Any other option goes to libfuse and the kernel: max_read=N, auto_unmount,
      fsname=NAME, default_permissions and so on. Options that mount(8) adds for every
      filesystem (defaults, noauto, nofail, _netdev, x-*) are ignored.

    Exit status: 0 mounted (or, with -f, unmounted cleanly); 1 runtime error; 2 usage
    error; 3 the chain does not verify (a wrong chunk size, or verify=full found a bad
    chunk).

    Examples:
      chainfs mount movie.chain /mnt/movie --root 3f2a...e9 --chunk-size 1M
      mpv /mnt/movie/movie.mp4
      fusermount3 -u /mnt/movie

    """

  static func run(_ arguments: ParsedArguments) throws -> ExitCode {
    let positionals = try arguments.positionals("SOURCE", "MOUNTPOINT")
    // Absolute paths: the driver leaves the current folder, so as not to keep it busy.
    let sourcePath = absolutePath(positionals[0])
    let mountpoint = absolutePath(positionals[1])
    var options = MountOptions()
    if let message = options.parse(arguments.all("-o")) { throw UsageError(message) }
    if arguments.has("-d") {
      options.debug = true
      options.fuseOptions.append("debug")
    }

    let trust = TrustAnchor(
      root: try arguments.root() ?? options.root,
      chunkSize: try arguments.size("--chunk-size") ?? options.chunkSize)
    let threshold: Log.Level =
      arguments.has("--quiet")
      ? .error : (arguments.has("--logs") || options.debug) ? .debug : .info
    Log.shared.configure(prefix: "chainfs mount", threshold: threshold)

    guard FuseServer.acceptsOptions(options.fuseOptions) else {
      throw UsageError("libfuse refused the options above")
    }
    let source = try openChainSource(sourcePath, options: SourceOptions(directIO: options.directIO))
    let root = try trust.root(for: source.header)
    try checkMountpoint(mountpoint)

    let readyDescriptor = try arguments.count("--ready-fd", range: 0...1024)
    if !arguments.has("--foreground") && !options.debug && readyDescriptor == nil {
      return try startInBackground(mountpoint: mountpoint, name: source.header.name)
    }
    if readyDescriptor != nil {
      setsid()
      _ = chdir("/")
    }
    CommonOptions.warnIfUntrusted(trust)
    return try serve(
      source, root: root, at: mountpoint, options: options, readyDescriptor: readyDescriptor)
  }

  private static func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }

  /// Opens the folder rather than only stat'ing it: on a killed driver's mount the kernel
  /// may answer `stat` from attributes it cached, but an open always asks the driver.
  private static func checkMountpoint(_ path: String) throws {
    let folder = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard folder >= 0 else {
      switch errno {
      case ENOTCONN:
        throw ChainError.invalidArgument(
          "\(path): a stale mount left by a driver that was killed; "
            + "clear it with 'fusermount3 -u \(path)'")
      case ENOTDIR:
        throw ChainError.invalidArgument("\(path): the mount point must be a folder")
      default:
        throw ChainError.system(SystemError("open", path: path, errno: errno))
      }
    }
    close(folder)
  }

  /// Runs the driver here, in the foreground, until it is unmounted or signalled.
  private static func serve(
    _ source: ChainSource, root: Digest, at mountpoint: String, options: MountOptions,
    readyDescriptor: Int?
  ) throws -> ExitCode {
    let header = source.header
    let store = ChunkStore(source: source, root: root, options: options.store)
    if options.verify == .full {
      Log.shared.info("verifying all \(header.chunkCount) chunks before mounting")
      try store.verifyAll()
    }
    if options.verify == .background {
      Thread.detachNewThread {
        // On Linux a nice value belongs to a thread: 0 means this thread alone.
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        store.verifyInBackground()
        if store.failedChunk == nil {
          Log.shared.debug("background verification reached the end of the chain")
        }
      }
    }

    let fsname = URL(fileURLWithPath: source.path).standardizedFileURL.path.replacingOccurrences(
      of: ",", with: "\\,")
    let fuseOptions = ["ro", "fsname=\(fsname)", "subtype=chainfs"] + options.fuseOptions
    let server = FuseServer(
      store: store, owner: options.owner, kernelReadahead: options.kernelReadahead)
    try server.serve(mountpoint: mountpoint, fuseOptions: fuseOptions) { error in
      if let readyDescriptor { reportReadiness(error, to: Int32(readyDescriptor)) }
      if error == nil {
        Log.shared.info(
          "serving \(header.name) (\(ByteSize.format(header.fileSize))) at \(mountpoint)")
      }
    }
    Log.shared.info("unmounted \(mountpoint)")
    return .success
  }

  /// Tells the waiting parent that the mount is up, then leaves the terminal for syslog.
  private static func reportReadiness(_ error: Error?, to descriptor: Int32) {
    if let error {
      Log.shared.error("\(error)")
    } else {
      Log.shared.switchToSyslog()
      let devNull = open("/dev/null", O_RDWR)
      dup2(devNull, 2)
      close(devNull)
      _ = write(descriptor, "ready\n", 6)
    }
    close(descriptor)
  }

  /// Starts this same command again as a driver in a new session, and returns once it
  /// reports that the file is readable, or with its exit status if it fails first.
  ///
  /// Forking a process that has started threads is unsafe, so the driver is a fresh
  /// process, spawned, rather than a fork of this one.
  private static func startInBackground(mountpoint: String, name: String) throws -> ExitCode {
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else {
      throw ChainError.system(SystemError("pipe", path: mountpoint, errno: errno))
    }
    _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // The driver outlives this command: it must not hold what the caller left open (a
    // pipe it holds would keep the caller's reader waiting until the unmount).
    for descriptor in inheritableDescriptors() where descriptor > 3 {
      posix_spawn_file_actions_addclose(&actions, descriptor)
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 3)

    let arguments = CommandLine.arguments + ["--ready-fd", "3"]
    var argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child: pid_t = 0
    // The binary's own path rather than /proc/self/exe, so that the driver is named
    // chainfs in ps, pgrep and killall.
    let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let executable = link.flatMap { fileKind(at: $0) == S_IFREG ? $0 : nil } ?? "/proc/self/exe"
    let status = posix_spawn(&child, executable, &actions, nil, &argv, environ)
    close(pipeEnds[1])
    defer { close(pipeEnds[0]) }
    guard status == 0 else {
      throw ChainError.system(SystemError("posix_spawn", path: executable, errno: status))
    }

    var answer = [UInt8](repeating: 0, count: 16)
    let count = answer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
    if count > 0 && answer.starts(with: Array("ready".utf8)) {
      Log.shared.debug("driver \(child) serving \(name) at \(mountpoint)")
      return .success
    }
    var exitStatus: Int32 = 0
    waitpid(child, &exitStatus, 0)
    let code = (exitStatus >> 8) & 0xff
    return code == 0 ? .failure : ExitCode(rawValue: code)
  }
}

/// Open descriptors that an exec would hand on: those without close-on-exec.
private func inheritableDescriptors() -> [Int32] {
  let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
  return names.compactMap(Int32.init).filter { fcntl($0, F_GETFD) == 0 }
}
