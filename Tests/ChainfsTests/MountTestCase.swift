import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// What one read through a mount returned: the bytes served before it stopped, and the
/// errno that stopped it, if one did.
struct MountRead {
  var bytes: [UInt8] = []
  var error: Int32?
}

/// A mount command spawned directly, and where its output is being captured.
struct SpawnedRun {
  let pid: pid_t
  let stdoutPath: String
  let stderrPath: String
}

/// A mount test needs the kernel's FUSE device; without it the test fails, never skips.
struct MissingFuse: Error, CustomStringConvertible {
  var description: String { "/dev/fuse is not usable here; mount tests need it" }
}

/// A program a test drives (fusermount3, ffmpeg) is not installed.
struct MissingProgram: Error, CustomStringConvertible {
  let name: String
  var description: String { "\(name) is not on PATH" }
}

/// A system call the test harness itself needs failed.
struct HarnessError: Error, CustomStringConvertible {
  let call: String
  let errno: Int32
  var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Something a test waited for did not happen in time.
struct MountTimeout: Error, CustomStringConvertible {
  let what: String
  var description: String { "timed out waiting until \(what)" }
}

/// Reads drawn from a fixed seed (SplitMix64), so that a failing offset comes back on the
/// next run.
struct SeededGenerator: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var mixed = state
    mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
    return mixed ^ (mixed >> 31)
  }
}

/// Real mounts of real chains, each under the test's private folder, and all of them gone
/// when the test ends, whether it passed or not.
///
/// Mount commands are spawned and waited for by process id, not through Foundation's
/// Process: that one waits for the end of a socket it hands the child, and a background
/// driver that inherits the socket would keep the command looking alive until unmounted.
/// The test process is a child subreaper, so a driver whose command has returned is
/// adopted by it: tests can collect the driver's exit status, and tearDown can reap it.
class MountTestCase: ChainfsTestCase {
  /// Every mount point handed out, to unmount in tearDown.
  private var mountPoints: [String] = []
  /// Drivers seen serving, and where, to reap or, as a last resort, kill in tearDown.
  private var drivers: [pid_t: String] = [:]
  /// Spawned runs not yet waited for: foreground (-f) drivers end with their mount.
  private var spawned: Set<pid_t> = []

  override func setUpWithError() throws {
    try super.setUpWithError()
    guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw MissingFuse() }
    try becomeSubreaper()
  }

  override func tearDownWithError() throws {
    for mountPoint in mountPoints.reversed() {
      releaseMount(mountPoint)
    }
    for pid in spawned {
      stop(pid)
    }
    for (pid, mountPoint) in drivers where collectExit(of: pid, timeout: 2) == nil {
      // Only a process still serving there: a bare pid may have been reused.
      if driverProcesses(at: mountPoint).contains(pid) { stop(pid) }
    }
    try super.tearDownWithError()
  }

  // MARK: Mounting

  /// A new, empty folder to mount on, unmounted again in tearDown.
  func makeMountPoint(_ name: String = "mnt") throws -> String {
    let mountPoint = path(name)
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
    mountPoints.append(mountPoint)
    return mountPoint
  }

  /// Runs `chainfs mount source mountPoint options...` to completion and remembers the
  /// driver it left serving, if any. A relative `source` is in the test's folder.
  @discardableResult
  func mount(_ source: String, at mountPoint: String, _ options: [String]) throws -> ToolRun {
    let run = try wait(spawn(toolPath, ["mount", absolute(source), mountPoint] + options))
    noteDrivers(at: mountPoint)
    return run
  }

  /// Mounts and fails the test unless the mount succeeds; returns the served file's path.
  @discardableResult
  func mountFile(
    _ name: String, from source: String, at mountPoint: String, _ options: [String],
    file: StaticString = #filePath, line: UInt = #line
  ) throws -> String {
    let run = try mount(source, at: mountPoint, options)
    XCTAssertEqual(run.status, 0, "mount failed: \(run.stderr)", file: file, line: line)
    XCTAssertTrue(isMounted(mountPoint), "not in /proc/mounts", file: file, line: line)
    return mountPoint + "/" + name
  }

  /// Starts a foreground driver (-f) and returns once its file can be seen.
  func startForeground(
    _ name: String, from source: String, at mountPoint: String, _ options: [String]
  ) throws -> SpawnedRun {
    let run = try spawn(toolPath, ["mount", absolute(source), mountPoint, "-f"] + options)
    try waitUntil("\(mountPoint)/\(name) appears") {
      FileManager.default.fileExists(atPath: mountPoint + "/" + name) || hasExited(run.pid)
    }
    return run
  }

  private func absolute(_ name: String) -> String {
    name.hasPrefix("/") ? name : path(name)
  }

  /// Whether the kernel lists `mountPoint` as mounted.
  func isMounted(_ mountPoint: String) -> Bool {
    guard let table = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else {
      return false
    }
    return table.split(separator: "\n").contains { line in
      line.split(separator: " ").dropFirst().first.map(String.init) == mountPoint
    }
  }

  /// Runs `fusermount3 -u mountPoint` and returns what it did.
  @discardableResult
  func fusermount(_ mountPoint: String, lazily: Bool = false) throws -> ToolRun {
    let options = lazily ? ["-u", "-z"] : ["-u"]
    return try finish(start(program: program("fusermount3"), options + [mountPoint]))
  }

  /// Unmounts, lazily if a reader still holds the mount, and says so if that fails.
  private func releaseMount(_ mountPoint: String) {
    noteDrivers(at: mountPoint)
    for lazily in [false, true] where isMounted(mountPoint) {
      _ = try? fusermount(mountPoint, lazily: lazily)
    }
    XCTAssertFalse(isMounted(mountPoint), "\(mountPoint) still mounted after the test")
  }

  // MARK: Drivers

  /// The running processes whose command line names `mountPoint` as an argument: the
  /// background driver carries the mount command line plus `--ready-fd`.
  func driverProcesses(at mountPoint: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> pid_t? in
      guard let pid = pid_t(entry), pid != getpid(),
        let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
      else { return nil }
      let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      let serving = arguments.contains("mount") && arguments.contains(mountPoint)
      return serving && arguments.contains("--ready-fd") ? pid : nil
    }
  }

  /// The one background driver serving `mountPoint`, failing the test if there is not
  /// exactly one.
  func driver(at mountPoint: String, file: StaticString = #filePath, line: UInt = #line)
    throws -> pid_t
  {
    let found = driverProcesses(at: mountPoint)
    XCTAssertEqual(found.count, 1, "drivers at \(mountPoint): \(found)", file: file, line: line)
    let pid = try XCTUnwrap(found.first, file: file, line: line)
    drivers[pid] = mountPoint
    return pid
  }

  private func noteDrivers(at mountPoint: String) {
    for pid in driverProcesses(at: mountPoint) { drivers[pid] = mountPoint }
  }

  /// Waits for a child (or an adopted driver) to exit and returns its wait status, or nil
  /// if it is still running after `timeout` seconds.
  func collectExit(of pid: pid_t, timeout: TimeInterval) -> Int32? {
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while true {
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid || (result < 0 && errno == ECHILD) {
        drivers[pid] = nil
        spawned.remove(pid)
        return result == pid ? status : nil
      }
      guard Date() < deadline else { return nil }
      usleep(5_000)
    }
  }

  /// Whether `pid` is gone or a zombie, without reaping it.
  private func hasExited(_ pid: pid_t) -> Bool {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else {
      return true
    }
    return status.split(separator: ")").last?.split(separator: " ").first == "Z"
  }

  /// Asks a leftover process to stop, then makes it.
  private func stop(_ pid: pid_t) {
    kill(pid, SIGTERM)
    if collectExit(of: pid, timeout: 2) == nil {
      kill(pid, SIGKILL)
      _ = collectExit(of: pid, timeout: 5)
    }
  }

  /// prctl(2) is variadic, which Swift does not import, so it is called through dlsym
  /// with its arguments spelled out.
  private func becomeSubreaper() throws {
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    let setChildSubreaper: Int32 = 36  // PR_SET_CHILD_SUBREAPER, from linux/prctl.h
    let symbol = try XCTUnwrap(dlsym(dlopen(nil, RTLD_NOW), "prctl"), "no prctl in libc")
    let prctl = unsafeBitCast(symbol, to: Prctl.self)
    guard prctl(setChildSubreaper, 1, 0, 0, 0) == 0 else {
      throw HarnessError(call: "prctl(PR_SET_CHILD_SUBREAPER)", errno: errno)
    }
  }

  // MARK: Spawning

  /// Starts `program` with standard input from /dev/null and its output captured. The
  /// child gets no descriptor of this process except those in `inherit`, given as
  /// [descriptor here: descriptor in the child].
  func spawn(
    _ program: String, _ arguments: [String], environment: [String: String]? = nil,
    inherit: [Int32: Int32] = [:]
  ) throws -> SpawnedRun {
    let (stdoutPath, stderrPath) = try makeCaptureFiles()
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_APPEND, 0)
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_APPEND, 0)
    passOnly(inherit, with: &actions)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    resetSignals(&attributes)

    let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0)=\($1)" }
    let argv = ([program] + arguments).map { strdup($0) } + [nil]
    let envp = variables.map { strdup($0) } + [nil]
    defer {
      for string in argv + envp { free(string) }
    }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
    guard status == 0 else { throw HarnessError(call: "posix_spawn \(program)", errno: status) }
    spawned.insert(pid)
    return SpawnedRun(pid: pid, stdoutPath: stdoutPath, stderrPath: stderrPath)
  }

  /// Moves the descriptors in `inherit` to their places in the child and closes every
  /// other one above standard error.
  private func passOnly(
    _ inherit: [Int32: Int32], with actions: inout posix_spawn_file_actions_t
  ) {
    for (here, there) in inherit {
      posix_spawn_file_actions_adddup2(&actions, here, there)
    }
    let kept = Set(inherit.values)
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for descriptor in open.compactMap({ Int32($0) }) where descriptor > 2 {
      if !kept.contains(descriptor) { posix_spawn_file_actions_addclose(&actions, descriptor) }
    }
  }

  /// SIGINT and SIGTERM at their defaults and no signal blocked, as from a terminal: a
  /// shell that started the tests in the background may have left SIGINT ignored, and
  /// libfuse leaves an ignored signal ignored.
  private func resetSignals(_ attributes: inout posix_spawnattr_t) {
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGINT)
    sigaddset(&defaults, SIGTERM)
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &unblocked)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
  }

  /// Waits for a spawned run to end, killing it and failing the test after `runTimeout`.
  func wait(_ run: SpawnedRun) throws -> ToolRun {
    var status = collectExit(of: run.pid, timeout: runTimeout)
    if status == nil {
      XCTFail("\(run.pid) ran for more than \(runTimeout) s")
      kill(run.pid, SIGKILL)
      status = collectExit(of: run.pid, timeout: 10)
    }
    let waitStatus = status ?? 0
    return ToolRun(
      status: waitStatus & 0x7f == 0 ? (waitStatus >> 8) & 0xff : waitStatus & 0x7f,
      stdout: try String(contentsOfFile: run.stdoutPath, encoding: .utf8),
      stderr: try String(contentsOfFile: run.stderrPath, encoding: .utf8),
      exited: status != nil && waitStatus & 0x7f == 0)
  }

  // MARK: Reading

  /// Reads up to `count` bytes at `offset` as a careful reader would: again after a short
  /// read, until the count is met, the file ends or a read fails. `openDirect` in `flags`
  /// sends every read to the driver instead of the kernel's page cache.
  func read(_ file: String, offset: Int, count: Int, flags: Int32 = 0) -> MountRead {
    let descriptor = open(file, O_RDONLY | flags)
    guard descriptor >= 0 else { return MountRead(error: errno) }
    defer { close(descriptor) }
    return read(descriptor, offset: offset, count: count)
  }

  func read(_ descriptor: Int32, offset: Int, count: Int) -> MountRead {
    var result = MountRead()
    var buffer = [UInt8](repeating: 0, count: max(count, 1))
    while result.bytes.count < count {
      let done = result.bytes.count
      let got = buffer.withUnsafeMutableBytes {
        pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset + done))
      }
      if got < 0 {
        result.error = errno
        break
      }
      if got == 0 { break }
      result.bytes += buffer[done..<(done + got)]
    }
    return result
  }

  /// The whole served file through the kernel, as `cp` would read it.
  func readWhole(_ file: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
  }

  func fileStatus(_ path: String) -> (info: stat, error: Int32?) {
    var info = stat()
    let error = stat(path, &info) == 0 ? nil : errno
    return (info, error)
  }

  /// The errno of opening `path`, or nil if it opens.
  func openError(_ path: String, flags: Int32 = O_RDONLY) -> Int32? {
    let descriptor = open(path, flags)
    guard descriptor >= 0 else { return errno }
    close(descriptor)
    return nil
  }

  // MARK: Helpers

  /// The full path of a program on PATH, failing the test if it is missing.
  func program(_ name: String) throws -> String {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
    for folder in folders + ["/usr/bin", "/bin"] {
      let candidate = "\(folder)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw MissingProgram(name: name)
  }

  func waitUntil(_ what: String, timeout: TimeInterval = 10, _ done: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !done() {
      guard Date() < deadline else { throw MountTimeout(what: what) }
      usleep(5_000)
    }
  }

  /// Sets the file's modification time to a fixed moment in the past, so that a served
  /// mtime equal to it cannot come from the clock.
  func backdate(_ name: String) throws {
    var times = [
      timespec(tv_sec: 981_173_106, tv_nsec: 250_000_000),
      timespec(tv_sec: 981_173_106, tv_nsec: 250_000_000),
    ]
    guard utimensat(AT_FDCWD, path(name), &times, 0) == 0 else {
      throw HarnessError(call: "utimensat \(name)", errno: errno)
    }
  }

  /// Encodes `name` into `output`, an archive if it ends in .chain and a folder otherwise,
  /// and returns the root.
  func encode(_ name: String, to output: String, chunkSize: String) throws -> String {
    let format = output.hasSuffix(".chain") ? "archive" : "folder"
    return try encode(name, "--format", format, "--chunk-size", chunkSize, "-o", output, "-q")
  }

  /// The trust anchor as mount options.
  func trust(_ root: String, _ chunkSize: String) -> [String] {
    ["--root", root, "--chunk-size", chunkSize]
  }

  /// Flips one bit of an archive at `offset` bytes after the start of record `index`.
  func flipBit(inRecord index: Int, at offset: Int, of archive: String, chunkSize: Int) throws {
    let info = try infoJSON(archive)
    let headerLength = try XCTUnwrap(info["header_length"] as? Int)
    var bytes = try contents(archive)
    bytes[headerLength + index * (chunkSize + 32) + offset] ^= 0x10
    try write(bytes, to: archive)
  }

  func infoJSON(_ source: String) throws -> [String: Any] {
    let run = try chainfs("info", source, "--json")
    XCTAssertEqual(run.status, 0, run.stderr)
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
    return try XCTUnwrap(object as? [String: Any], run.stdout)
  }
}

extension Array where Element == UInt8 {
  /// Byte-for-byte equality with a slice, by memcmp: a generic comparison, unoptimized in
  /// a debug build, takes seconds over the megabytes these tests read.
  func matches(_ expected: ArraySlice<UInt8>) -> Bool {
    guard count == expected.count else { return false }
    return withUnsafeBytes { served in
      expected.withUnsafeBytes { original in
        count == 0 || memcmp(served.baseAddress!, original.baseAddress!, count) == 0
      }
    }
  }
}
