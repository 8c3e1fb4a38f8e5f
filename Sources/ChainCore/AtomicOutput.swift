import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An output file or folder that appears under its final name only when complete.
///
/// Work goes to a hidden temporary name beside the target; `commit` renames it into
/// place. Until then a failed or interrupted run leaves nothing that looks whole, and an
/// existing target is replaced only when `force` is set.
public final class AtomicOutput {
  public let finalPath: String
  public let temporaryPath: String
  public let isFolder: Bool
  private let force: Bool
  private var committed = false

  public init(finalPath: String, isFolder: Bool, force: Bool) throws {
    self.finalPath = finalPath
    self.isFolder = isFolder
    self.force = force
    let url = URL(fileURLWithPath: finalPath)
    let directory = url.deletingLastPathComponent().path
    temporaryPath = directory + "/." + url.lastPathComponent + ".partial-\(getpid())"

    try checkTarget()
    try? FileManager.default.removeItem(atPath: temporaryPath)
    if isFolder {
      guard mkdir(temporaryPath, 0o755) == 0 else {
        throw ChainError.system(SystemError("mkdir", path: temporaryPath, errno: errno))
      }
    }
  }

  deinit {
    if !committed { discard() }
  }

  /// Creates the output file itself (for a file output) or a file inside the folder.
  public func createFile(named name: String? = nil) throws -> SystemFile {
    let path = name.map { temporaryPath + "/" + $0 } ?? temporaryPath
    return try SystemFile(path: path, flags: O_WRONLY | O_CREAT | O_TRUNC)
  }

  public func openFile(named name: String) throws -> SystemFile {
    try SystemFile(path: temporaryPath + "/" + name, flags: O_WRONLY)
  }

  /// Moves the finished output to its final name.
  public func commit() throws {
    try checkTarget()
    var displaced: String?
    if isFolder, fileKind(at: finalPath) != nil {
      displaced = temporaryPath + ".old"
      try rename(finalPath, to: displaced!)
    }
    try rename(temporaryPath, to: finalPath)
    committed = true
    if let displaced { try? FileManager.default.removeItem(atPath: displaced) }
  }

  public func discard() {
    try? FileManager.default.removeItem(atPath: temporaryPath)
  }

  private func checkTarget() throws {
    guard let kind = fileKind(at: finalPath) else { return }
    guard force else { throw ChainError.outputExists(path: finalPath) }
    if (kind == S_IFDIR) != isFolder {
      throw ChainError.invalidArgument(
        "\(finalPath): exists and is not a \(isFolder ? "folder" : "file"); not replacing it")
    }
  }

  private func rename(_ source: String, to target: String) throws {
    guard Glibc.rename(source, target) == 0 else {
      throw ChainError.system(SystemError("rename", path: source, errno: errno))
    }
  }
}
