import ChainCore

enum EncodeCommand: Command {
  static let name = "encode"
  static let summary = "split a file into a hash chain"
  static let options: [OptionSpec] =
    [
      .value("--output", "-o"), .value("--format"), .value("--chunk-size"), .value("--method"),
      .flag("--force", "-f"),
    ] + CommonOptions.jobs + CommonOptions.verbosity

  static let help = """
    Usage: chainfs encode FILE [-o PATH] [--format folder|archive] [--chunk-size SIZE]
                          [--method backwards-seeking|forward-backwards] [--jobs N]
                          [--force] [--logs] [--quiet]

    Splits FILE into chunks and writes them as records, each carrying the SHA-256 of the
    next record, so that one hash, the root, proves every byte. Prints the root (64
    lowercase hex characters) on standard output; everything else goes to standard error.

    Options:
      -o, --output PATH   where to write the chain; default: beside FILE, named after it
                          without its extension (folder) or with .chain (archive)
      --format FORMAT     folder (default): a folder of record files and a manifest;
                          archive: one .chain file, records back to back
      --chunk-size SIZE   bytes per chunk, 1 B to 1 GiB: 1048576, 64K, 1M (default 1M)
      --method METHOD     backwards-seeking (default): reads FILE from its end backwards
                          and writes each record once; forward-backwards: reads FILE
                          forwards, then finishes the hashes backwards. Same output.
      -j, --jobs N        hashing threads (default: the number of processors)
      -f, --force         replace PATH if it exists
      --logs              log every chunk: index, offset, hash
      -q, --quiet         print only the root and errors

    The output appears under its final name only when complete.

    Example:
      chainfs encode movie.mp4 --format archive      # writes movie.chain, prints the root

    """

  static func run(_ arguments: ParsedArguments) throws -> ExitCode {
    let input = try arguments.positionals("FILE")[0]
    CommonOptions.configureLog(arguments, command: name)

    var encoder = ChainEncoder()
    encoder.format = try arguments.choice("--format", as: ChainEncoder.Format.self) ?? .folder
    encoder.method =
      try arguments.choice("--method", as: ChainEncoder.Method.self) ?? .backwardsSeeking
    encoder.chunkSize = try arguments.size("--chunk-size") ?? TrustAnchor.defaultChunkSize
    guard encoder.chunkSize <= ChainGeometry.maximumChunkSize else {
      throw UsageError("--chunk-size: at most 1G")
    }
    encoder.jobs = try CommonOptions.jobs(arguments)
    encoder.force = arguments.has("--force")
    let output =
      arguments.value("--output")
      ?? ChainEncoder.defaultOutputPath(for: input, format: encoder.format)

    Interruption.install()
    let size = (try? SystemFile.openForReading(input).size) ?? 0
    let report = ChainReport(verb: "encoding", totalBytes: size)
    do {
      let header = try encoder.encode(inputPath: input, outputPath: output, observer: report)
      report.finish(
        "encoded \(header.name) (\(ByteSize.format(header.fileSize)), "
          + "\(chunkCount(header)) of \(ByteSize.format(header.chunkSize))) into \(output)")
      print(header.root.hex)
      return .success
    } catch {
      report.abandon()
      throw error
    }
  }
}
