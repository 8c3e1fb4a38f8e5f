import ChainCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Reports work on a chain as it goes: a progress line on a terminal, a log line per chunk
/// with --logs, and a one-line summary at the end.
final class ChainReport: ChainObserver {
  private let totalBytes: Int
  private let verb: String
  private let start = Date()
  private let showProgress: Bool
  private let logChunks: Bool
  private var doneBytes = 0
  private var lastDrawn: Date
  private var drawn = false

  init(verb: String, totalBytes: Int) {
    self.verb = verb
    self.totalBytes = totalBytes
    logChunks = Log.shared.enabled(.debug)
    showProgress = isatty(2) == 1 && Log.shared.enabled(.info) && !logChunks
    // The first line waits a moment, so that the rate it shows means something.
    lastDrawn = start.addingTimeInterval(0.3)
  }

  func chunkDone(_ index: Int, offset: Int, length: Int, digest: Digest) {
    doneBytes += length
    if logChunks {
      Log.shared.debug("chunk \(index): offset \(offset), \(length) bytes, sha256 \(digest.hex)")
    }
    if showProgress && Date().timeIntervalSince(lastDrawn) >= 0.2 {
      lastDrawn = Date()
      draw()
    }
  }

  private var elapsed: Double { max(Date().timeIntervalSince(start), 1e-6) }

  private func draw() {
    let rate = Double(doneBytes) / elapsed
    let left = rate > 0 ? Double(totalBytes - doneBytes) / rate : 0
    let line =
      "\(verb) \(ByteSize.format(doneBytes)) of \(ByteSize.format(totalBytes))"
      + "  \(Int(rate / 1e6)) MB/s  \(Int(left.rounded(.up))) s left"
    writeToStandardError("\r\(line)\u{1b}[K")
    drawn = true
  }

  /// Clears the progress line and logs what was done, how much and how fast.
  func finish(_ summary: String) {
    if drawn { writeToStandardError("\r\u{1b}[K") }
    let rate = Double(totalBytes) / elapsed / 1e6
    let time = String(format: "%.2f s", elapsed)
    Log.shared.info("\(summary) in \(time) (\(Int(rate)) MB/s)")
  }

  /// Clears the progress line after a failure, so the error starts at the line's start.
  func abandon() {
    if drawn { writeToStandardError("\r\u{1b}[K") }
  }
}

/// "1 chunk", "12 chunks".
func chunkCount(_ header: ChainHeader) -> String {
  header.chunkCount == 1 ? "1 chunk" : "\(header.chunkCount) chunks"
}
