import ChainCore

enum DecodeCommand: Command {
  static let name = "decode"
  static let summary = "rebuild the original file, verifying it"
  static let options =
    [.value("--output", "-o"), .flag("--force", "-f")]
    + CommonOptions.trust + CommonOptions.jobs + CommonOptions.verbosity

  static let help = """
    Usage: chainfs decode SOURCE [-o FILE] [--root HEX] [--chunk-size SIZE] [--force]
                          [--jobs N] [--logs] [--quiet]

    Rebuilds the original file from the chain in SOURCE, checking every record against
    the root as it streams. FILE appears only once the whole chain has verified.

    Options:
      -o, --output FILE   where to write (default: the recorded name, in the current folder)
      --root HEX          the trusted root, as printed by encode; without it the chain's
                          own recorded root is used, which catches accidental corruption
                          but not tampering
      --chunk-size SIZE   the trusted chunk size (default 1M when --root is given)
      -f, --force         replace FILE if it exists
      -j, --jobs N        hashing threads (default: the number of processors)
      --logs              log every chunk: index, offset, hash
      -q, --quiet         print only errors

    Exit status: 0 done; 3 the chain does not verify (nothing is written); 1 runtime
    error; 2 usage error.

    Example:
      chainfs decode movie.chain -o movie.mp4 --root 3f2a...e9

    """

  static func run(_ arguments: ParsedArguments) throws -> ExitCode {
    let path = try arguments.positionals("SOURCE")[0]
    CommonOptions.configureLog(arguments, command: name)
    let trust = try CommonOptions.trustAnchor(arguments)
    let jobs = try CommonOptions.jobs(arguments)
    let force = arguments.has("--force")
    Interruption.install()

    var output: AtomicOutput?
    try checkChain(path, trust: trust, jobs: jobs, work: ("decoding", "decoded")) { header in
      let target = arguments.value("--output") ?? header.name
      output = try AtomicOutput(finalPath: target, isFolder: false, force: force)
      return try output!.createFile()
    }
    try output?.commit()
    return .success
  }
}
