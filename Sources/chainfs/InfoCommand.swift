import ChainCore
import Foundation

enum InfoCommand: Command {
  static let name = "info"
  static let summary = "describe a chain"
  static let options: [OptionSpec] = [.flag("--json")]

  static let help = """
    Usage: chainfs info SOURCE [--json]

    Describes the chain in SOURCE (a chain folder or a .chain archive) from its manifest
    or header alone. Nothing is verified: the root shown is the one recorded, which only
    counts once it matches a root you trust.

    Options:
      --json    one JSON object: format, name, size, chunk_size, chunks, hash, root,
                mtime, header_length

    Example:
      chainfs info movie.chain --json

    """

  static func run(_ arguments: ParsedArguments) throws -> ExitCode {
    let path = try arguments.positionals("SOURCE")[0]
    let source = try openChainSource(path)
    let header = source.header

    if arguments.has("--json") {
      let object: [String: Any] = [
        "format": source.formatName, "name": header.name, "size": header.fileSize,
        "chunk_size": header.chunkSize, "chunks": header.chunkCount, "hash": "sha256",
        "root": header.root.hex, "mtime": header.modificationSeconds,
        "header_length": header.encodedLength,
      ]
      let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    } else {
      let mtime = Date(timeIntervalSince1970: Double(header.modificationSeconds))
      print(
        """
        format:      \(source.formatName)
        name:        \(header.name)
        size:        \(header.fileSize) bytes (\(ByteSize.format(header.fileSize)))
        chunk size:  \(header.chunkSize) bytes (\(ByteSize.format(header.chunkSize)))
        chunks:      \(header.chunkCount)
        hash:        sha256
        root:        \(header.root.hex) (recorded, not verified)
        modified:    \(ISO8601DateFormatter().string(from: mtime))
        """)
    }
    return .success
  }
}
