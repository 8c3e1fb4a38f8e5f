/// Sizes as users type them: bytes, or a number with a binary suffix (64K, 1M, 2G).
public enum ByteSize {
  public static func parse(_ text: String) -> Int? {
    var digits = Substring(text)
    var multiplier = 1
    if let last = digits.last, last.isLetter {
      var suffix = String(last).uppercased()
      digits.removeLast()
      if suffix == "B", let unit = digits.last, unit.isLetter {
        suffix = String(unit).uppercased()
        digits.removeLast()
        if digits.last == "i" || digits.last == "I" { digits.removeLast() }
      } else if suffix == "B" {
        suffix = ""
      }
      switch suffix {
      case "": multiplier = 1
      case "K": multiplier = 1 << 10
      case "M": multiplier = 1 << 20
      case "G": multiplier = 1 << 30
      case "T": multiplier = 1 << 40
      default: return nil
      }
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
      let value = Int(digits)
    else { return nil }
    let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
    return overflow ? nil : product
  }

  /// A short human form: "1.5 GiB", "64 KiB", "12 B".
  public static func format(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    if unit == 0 { return "\(bytes) B" }
    let rounded = value >= 100 || value == value.rounded() ? "\(Int(value.rounded()))" : String(format1: value)
    return "\(rounded) \(units[unit])"
  }
}

extension String {
  /// One decimal place, without Foundation's formatter.
  init(format1 value: Double) {
    let tenths = Int((value * 10).rounded())
    self = "\(tenths / 10).\(tenths % 10)"
  }
}
