/// Sizes as users type them: bytes, or a number with a binary suffix (64K, 1M, 2G).
public enum ByteSize {
  public static func parse(_ text: String) -> Int? {
    var digits = Substring(text)
    // Accepted suffixes: K, KB, KiB (and M, G, T alike), any case; a lone B means bytes.
    if digits.last == "B" || digits.last == "b" { digits.removeLast() }
    let binary = digits.last == "i" || digits.last == "I"
    if binary { digits.removeLast() }
    let exponents: [Character: Int] = ["K": 10, "M": 20, "G": 30, "T": 40]
    var multiplier = 1
    if let unit = digits.last.map({ Character($0.uppercased()) }), let exponent = exponents[unit] {
      multiplier = 1 << exponent
      digits.removeLast()
    } else if binary {
      return nil
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits)
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
    let rounded =
      value >= 100 || value == value.rounded() ? "\(Int(value.rounded()))" : String(format1: value)
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
