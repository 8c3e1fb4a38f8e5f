import ChainCore

#if canImport(Glibc)
  import Glibc
#endif

let toolHelp = """
  chainfs - serve a video from untrusted storage, every byte proven by one hash

  Usage:
    chainfs encode FILE [options]        split FILE into a hash chain
    chainfs decode SOURCE [options]      rebuild the original file, verifying it
    chainfs verify SOURCE [options]      check a whole chain without writing anything
    chainfs info SOURCE [--json]         describe a chain
    chainfs mount SOURCE DIR [options]   serve the verified file through FUSE

  SOURCE is a chain folder or a .chain archive. The trust anchor is the root hash that
  encode prints, together with the chunk size: pass both (--root, --chunk-size) to
  decode, verify and mount.

  Run 'chainfs COMMAND --help' for a command's options.

  Exit status: 0 success, 1 runtime error, 2 usage error, 3 the chain does not verify.

  """

func main() -> ExitCode {
  let arguments = Array(CommandLine.arguments.dropFirst())
  guard let first = arguments.first else {
    writeToStandardError(toolHelp)
    return .usage
  }
  if first == "-h" || first == "--help" || first == "help" {
    print(toolHelp, terminator: "")
    return .success
  }
  if first == "--version" {
    print("chainfs \(chainfsVersion)")
    return .success
  }
  guard let command = allCommands.first(where: { $0.name == first }) else {
    writeToStandardError("chainfs: unknown command '\(first)' (see 'chainfs --help')\n")
    return .usage
  }
  return runCommand(command, Array(arguments.dropFirst()))
}

let chainfsVersion = "0.1.0"
exit(main().rawValue)
