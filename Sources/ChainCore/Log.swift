import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A small levelled logger for the front ends; the library itself stays silent.
///
/// In the foreground it writes one line per event to standard error; a driver running in
/// the background sends the same lines to syslog, where an operator looks for them.
public final class Log: @unchecked Sendable {
  public enum Level: Int, Comparable, Sendable {
    case error, warning, info, debug

    public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

    var label: String {
      switch self {
      case .error: return "error"
      case .warning: return "warning"
      case .info: return "info"
      case .debug: return "debug"
      }
    }

    var syslogPriority: Int32 {
      switch self {
      case .error: return LOG_ERR
      case .warning: return LOG_WARNING
      case .info: return LOG_INFO
      case .debug: return LOG_DEBUG
      }
    }
  }

  public static let shared = Log()

  private let lock = NSLock()
  private var threshold = Level.warning
  private var prefix = "chainfs"
  private var useSyslog = false

  public func configure(prefix: String, threshold: Level) {
    lock.withLock {
      self.prefix = prefix
      self.threshold = threshold
    }
  }

  /// From now on, lines go to syslog under the name "chainfs" instead of standard error.
  public func switchToSyslog() {
    lock.withLock {
      openlog("chainfs", LOG_PID, LOG_DAEMON)
      useSyslog = true
    }
  }

  public func enabled(_ level: Level) -> Bool {
    lock.withLock { level <= threshold }
  }

  public func log(_ level: Level, _ message: @autoclosure () -> String) {
    guard enabled(level) else { return }
    let text = message()
    lock.withLock {
      if useSyslog {
        withVaList([text]) { vsyslog(level.syslogPriority, "%s", $0) }
      } else {
        let label = level == .info || level == .debug ? "" : "\(level.label): "
        writeToStandardError("\(prefix): \(label)\(text)\n")
      }
    }
  }

  public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
  public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
  public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
  public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
}

/// Writes text to standard error unbuffered, so lines from several threads never mix.
public func writeToStandardError(_ text: String) {
  var text = text
  text.withUTF8 { bytes in
    var done = 0
    while done < bytes.count {
      let count = Glibc.write(2, bytes.baseAddress! + done, bytes.count - done)
      if count <= 0 && errno != EINTR { return }
      if count > 0 { done += count }
    }
  }
}
