import ChainCore

enum MountCommand: Command {
  static let name = "mount"
  static let summary = "serve the verified file through FUSE"
  static let options: [OptionSpec] = []
  static let help = "Usage: chainfs mount SOURCE MOUNTPOINT\n"
  static func run(_ arguments: ParsedArguments) throws -> ExitCode { .failure }
}
