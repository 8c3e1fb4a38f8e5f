import ChainCore
import Foundation

enum VerifyCommand: Command {
  static let name = "verify"
  static let summary = "check a whole chain"
  static let options = CommonOptions.trust + CommonOptions.jobs + CommonOptions.verbosity

  static let help = """
    Usage: chainfs verify SOURCE [--root HEX] [--chunk-size SIZE] [--jobs N] [--logs] [--quiet]

    Checks every record of the chain in SOURCE (a chain folder or a .chain archive) against
    the root, and that nothing is missing or added. Writes nothing.

    Options:
      --root HEX          the trusted root, as printed by encode; without it the chain's
                          own recorded root is used, which catches accidental corruption
                          but not tampering
      --chunk-size SIZE   the trusted chunk size (default 1M when --root is given); the
                          chain must record exactly this size
      -j, --jobs N        hashing threads (default: the number of processors)
      --logs              log every chunk: index, offset, hash
      -q, --quiet         print only errors

    Exit status: 0 the chain verifies; 3 it does not (the message names the first chunk
    that fails); 1 it cannot be read; 2 usage error.

    Example:
      chainfs verify movie.chain --root 3f2a...e9 --chunk-size 1M

    """

  static func run(_ arguments: ParsedArguments) throws -> ExitCode {
    let path = try arguments.positionals("SOURCE")[0]
    CommonOptions.configureLog(arguments, command: name)
    let trust = try CommonOptions.trustAnchor(arguments)
    let jobs = try CommonOptions.jobs(arguments)
    Interruption.install()

    try checkChain(path, trust: trust, jobs: jobs, work: ("verifying", "verified")) { _ in nil }
    return .success
  }
}

/// Verifies the chain at `path`, writing its chunks to `output` when given: the work that
/// verify and decode share.
func checkChain(
  _ path: String, trust: TrustAnchor, jobs: Int, work: (doing: String, done: String),
  output: (ChainHeader) throws -> SystemFile?
) throws {
  let source = try openChainSource(path)
  let verifier = try ChainVerifier(source: source, trust: trust, jobs: jobs)
  CommonOptions.warnIfUntrusted(trust)
  let header = source.header
  let report = ChainReport(
    verb: work.doing, totalBytes: header.fileSize)
  do {
    try verifier.run(writingTo: try output(header), observer: report)
    report.finish(
      "\(work.done) \(header.name): \(ByteSize.format(header.fileSize)) in \(chunkCount(header))")
  } catch {
    report.abandon()
    throw error
  }
}
