import ChainCore

#if canImport(Glibc)
  import Glibc
#endif

/// The documented exit statuses, the same for every subcommand.
struct ExitCode: Equatable {
  let rawValue: Int32

  static let success = ExitCode(rawValue: 0)
  static let failure = ExitCode(rawValue: 1)
  static let usage = ExitCode(rawValue: 2)
  static let integrity = ExitCode(rawValue: 3)

  /// As a shell reports a process killed by `signal`: 130 for Ctrl-C.
  static func interrupted(by signal: Int32) -> ExitCode { ExitCode(rawValue: 128 + signal) }
}

/// One subcommand: its name, its help and what it does.
protocol Command {
  static var name: String { get }
  static var summary: String { get }
  static var help: String { get }
  static var options: [OptionSpec] { get }
  static func run(_ arguments: ParsedArguments) throws -> ExitCode
}

let allCommands: [Command.Type] = [
  EncodeCommand.self, DecodeCommand.self, VerifyCommand.self, InfoCommand.self,
  MountCommand.self,
]

/// Parses and runs one subcommand, turning every failure into one line and an exit code.
func runCommand(_ command: Command.Type, _ arguments: [String]) -> ExitCode {
  let prefix = "chainfs \(command.name)"
  Log.shared.configure(prefix: prefix, threshold: .warning)
  if arguments.contains(where: { $0 == "-h" || $0 == "--help" }) {
    print(command.help, terminator: "")
    return .success
  }

  do {
    let parsed = try ParsedArguments(arguments, options: command.options + [.flag("--help", "-h")])
    return try command.run(parsed)
  } catch let error as UsageError {
    writeToStandardError("\(prefix): \(error.message) (see 'chainfs \(command.name) --help')\n")
    return .usage
  } catch let error as ChainError {
    writeToStandardError("\(prefix): \(error)\n")
    if case .interrupted(let signal) = error { return .interrupted(by: signal) }
    return error.isIntegrityFailure ? .integrity : .failure
  } catch {
    writeToStandardError("\(prefix): \(error)\n")
    return .failure
  }
}

/// The options every chain-reading command shares: the trust anchor and the log level.
struct CommonOptions {
  static let trust: [OptionSpec] = [.value("--root"), .value("--chunk-size")]
  static let verbosity: [OptionSpec] = [.flag("--logs"), .flag("--quiet", "-q")]
  static let jobs: [OptionSpec] = [.value("--jobs", "-j")]

  static func trustAnchor(_ arguments: ParsedArguments) throws -> TrustAnchor {
    TrustAnchor(root: try arguments.root(), chunkSize: try arguments.size("--chunk-size"))
  }

  static func jobs(_ arguments: ParsedArguments) throws -> Int {
    try arguments.count("--jobs", range: 1...256) ?? defaultJobs
  }

  static var defaultJobs: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

  static func configureLog(_ arguments: ParsedArguments, command: String) {
    let threshold: Log.Level =
      arguments.has("--quiet") ? .error : arguments.has("--logs") ? .debug : .info
    Log.shared.configure(prefix: "chainfs \(command)", threshold: threshold)
  }

  /// The one warning a user gets when nothing outside the chain vouches for it.
  static func warnIfUntrusted(_ trust: TrustAnchor) {
    guard !trust.isTrusted else { return }
    Log.shared.warning(
      "no --root given: checking against the chain's own recorded root, which detects "
        + "accidental corruption but not tampering")
  }
}
