import ChainCore
import Foundation
import XCTest

#if canImport(Glibc)
  import Glibc
#endif

/// What one run of the chainfs binary did.
struct ToolRun {
  let status: Int32
  let stdout: String
  let stderr: String
  /// False when a signal ended the process before it could clean up and exit.
  let exited: Bool

  /// Standard error split into lines, without the empty piece after the final newline.
  var stderrLines: [String] {
    stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
  }
}

/// A chainfs process under way, and where its output is being captured.
struct StartedRun {
  let process: Process
  let stdoutPath: String
  let stderrPath: String
}

/// A missing binary fails the test rather than skipping it: the suite exists to run it.
struct MissingTool: Error, CustomStringConvertible {
  let folder: String
  var description: String { "no chainfs binary beside \(folder); build the package first" }
}

/// Runs the real chainfs binary in a private folder per test, removed afterwards.
///
/// Shared by every suite that drives the command: encode, decode, verify and info here,
/// mount in its own file.
class ChainfsTestCase: XCTestCase {
  /// The folder a test works in, and the tool's current directory.
  private(set) var directory = ""
  /// Captured output lives apart from `directory`, so listings of it stay exact.
  private var captureDirectory = ""
  /// Holds both, and goes in tearDown.
  private var scratch = ""
  private var runCount = 0

  /// How long any one run may take before the test gives up on it.
  var runTimeout: TimeInterval = 60

  override func setUpWithError() throws {
    try super.setUpWithError()
    scratch = FileManager.default.temporaryDirectory.path + "/chainfs-\(UUID().uuidString)"
    directory = scratch + "/work"
    captureDirectory = scratch + "/capture"
    for folder in [directory, captureDirectory] {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(atPath: scratch)
    try super.tearDownWithError()
  }

  /// The binary SwiftPM built beside the test bundle.
  var toolPath: String {
    get throws {
      let bundle = Bundle(for: ChainfsTestCase.self).bundleURL
      for folder in [bundle.deletingLastPathComponent(), bundle] {
        let candidate = folder.appendingPathComponent("chainfs").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      }
      throw MissingTool(folder: bundle.path)
    }
  }

  func path(_ name: String) -> String { directory + "/" + name }

  /// Starts chainfs in `directory` with its output going to capture files.
  func start(_ arguments: [String]) throws -> StartedRun {
    try start(program: toolPath, arguments)
  }

  /// Starts any program the way `start` starts chainfs: in `directory`, output captured.
  func start(program: String, _ arguments: [String]) throws -> StartedRun {
    let (stdoutPath, stderrPath) = try makeCaptureFiles()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
    try process.run()
    return StartedRun(process: process, stdoutPath: stdoutPath, stderrPath: stderrPath)
  }

  /// A fresh, empty pair of files for one run's standard output and standard error,
  /// apart from `directory`.
  func makeCaptureFiles() throws -> (stdout: String, stderr: String) {
    runCount += 1
    let stdoutPath = captureDirectory + "/\(runCount).out"
    let stderrPath = captureDirectory + "/\(runCount).err"
    for capture in [stdoutPath, stderrPath] {
      try Data().write(to: URL(fileURLWithPath: capture))
    }
    return (stdoutPath, stderrPath)
  }

  /// Waits for a started run to end, failing the test if it outlives `runTimeout`.
  func finish(_ started: StartedRun) throws -> ToolRun {
    let process = started.process
    let deadline = Date().addingTimeInterval(runTimeout)
    while process.isRunning && Date() < deadline {
      usleep(10_000)
    }
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
      XCTFail("chainfs \(process.arguments ?? []) ran for more than \(runTimeout) s")
    }
    return ToolRun(
      status: process.terminationStatus,
      stdout: try String(contentsOfFile: started.stdoutPath, encoding: .utf8),
      stderr: try String(contentsOfFile: started.stderrPath, encoding: .utf8),
      exited: process.terminationReason == .exit)
  }

  /// Runs chainfs to completion.
  func chainfs(_ arguments: String...) throws -> ToolRun {
    try finish(start(arguments))
  }

  /// Writes `count` random bytes to `name` in the test's folder and returns them.
  @discardableResult
  func writeRandomFile(_ name: String, count: Int) throws -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
      for offset in stride(from: 0, to: count, by: 8) {
        let word = generator.next()
        withUnsafeBytes(of: word) { wordBytes in
          raw.baseAddress!.advanced(by: offset).copyMemory(
            from: wordBytes.baseAddress!, byteCount: min(8, count - offset))
        }
      }
    }
    try write(bytes, to: name)
    return bytes
  }

  func write(_ bytes: [UInt8], to name: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
  }

  func contents(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
  }

  /// Everything in the test's folder, hidden entries included, sorted.
  func listing(_ folder: String = "") throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path(folder)).sorted()
  }

  /// Encodes `name` and returns the root it printed, failing the test on any error.
  func encode(_ name: String, _ options: String...) throws -> String {
    let run = try finish(start(["encode", name] + options))
    XCTAssertEqual(run.status, 0, "encode failed: \(run.stderr)")
    return run.stdout.trimmingCharacters(in: .newlines)
  }

  /// The root of `bytes` from the chain's definition, using the library only for SHA-256
  /// (itself checked against a FIPS 180-4 reference in ChainCoreTests).
  func definitionRoot(_ bytes: [UInt8], chunkSize: Int) -> String {
    var link: [UInt8] = []
    let lastStart = bytes.isEmpty ? 0 : (bytes.count - 1) / chunkSize * chunkSize
    for start in stride(from: lastStart, through: 0, by: -chunkSize) {
      let chunk = bytes[start..<min(start + chunkSize, bytes.count)]
      link = SHA256.hash(Array(chunk) + link).bytes
    }
    return Digest(bytes: link).hex
  }

  /// Fails unless `run` is a usage error from `command`: exit 2, nothing on standard
  /// output, and on standard error one line that mentions `subject` and ends with the hint
  /// to ask for help.
  func assertUsageError(
    _ run: ToolRun, command: String, mentioning subject: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(run.status, 2, run.stderr, file: file, line: line)
    XCTAssertEqual(run.stdout, "", file: file, line: line)
    let lines = run.stderrLines
    XCTAssertEqual(lines.count, 1, "\(lines)", file: file, line: line)
    XCTAssertTrue(
      lines.first?.hasPrefix("chainfs \(command): ") == true, "\(lines)", file: file, line: line)
    XCTAssertTrue(lines.first?.contains(subject) == true, "\(lines)", file: file, line: line)
    XCTAssertTrue(
      lines.first?.hasSuffix("(see 'chainfs \(command) --help')") == true, "\(lines)",
      file: file, line: line)
  }
}
