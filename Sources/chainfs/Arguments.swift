import ChainCore

/// A command-line mistake: reported in one line, with exit status 2.
struct UsageError: Error {
  let message: String
  init(_ message: String) { self.message = message }
}

/// One option a subcommand accepts.
struct OptionSpec {
  /// Every spelling, canonical one first: ["--output", "-o"].
  let names: [String]
  let takesValue: Bool

  static func flag(_ names: String...) -> OptionSpec { OptionSpec(names: names, takesValue: false) }
  static func value(_ names: String...) -> OptionSpec { OptionSpec(names: names, takesValue: true) }

  var canonical: String { names[0] }
}

/// What a command line said, once checked against a subcommand's options.
struct ParsedArguments {
  var positionals: [String] = []
  private var values: [String: [String]] = [:]

  /// Parses `arguments`; `--name value`, `--name=value`, `-n value` and `-nVALUE` all work,
  /// and `--` ends the options.
  init(_ arguments: [String], options: [OptionSpec]) throws {
    var lookup: [String: OptionSpec] = [:]
    for option in options {
      for name in option.names { lookup[name] = option }
    }

    var index = 0
    var optionsEnded = false
    while index < arguments.count {
      let argument = arguments[index]
      index += 1
      if optionsEnded || argument == "-" || !argument.hasPrefix("-") {
        positionals.append(argument)
        continue
      }
      if argument == "--" {
        optionsEnded = true
        continue
      }

      var name = argument
      var inlineValue: String?
      if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
        name = String(argument[..<equals])
        inlineValue = String(argument[argument.index(after: equals)...])
      } else if !argument.hasPrefix("--"), argument.count > 2 {
        name = String(argument.prefix(2))
        inlineValue = String(argument.dropFirst(2))
      }
      guard let option = lookup[name] else { throw UsageError("unknown option '\(name)'") }

      if option.takesValue {
        if inlineValue == nil {
          guard index < arguments.count else { throw UsageError("option '\(name)' needs a value") }
          inlineValue = arguments[index]
          index += 1
        }
        values[option.canonical, default: []].append(inlineValue!)
      } else {
        guard inlineValue == nil else { throw UsageError("option '\(name)' takes no value") }
        values[option.canonical, default: []].append("")
      }
    }
  }

  func has(_ name: String) -> Bool { values[name] != nil }

  /// The last value given for an option: later options override earlier ones.
  func value(_ name: String) -> String? { values[name]?.last }

  func all(_ name: String) -> [String] { values[name] ?? [] }

  func positionals(_ names: String...) throws -> [String] {
    guard positionals.count <= names.count else {
      throw UsageError("unexpected argument '\(positionals[names.count])'")
    }
    guard positionals.count == names.count else {
      throw UsageError("missing \(names[positionals.count])")
    }
    return positionals
  }

  func size(_ name: String) throws -> Int? {
    guard let text = value(name) else { return nil }
    guard let size = ByteSize.parse(text), size > 0 else {
      throw UsageError("\(name): '\(text)' is not a size (examples: 1048576, 64K, 1M)")
    }
    return size
  }

  func root(_ name: String = "--root") throws -> Digest? {
    guard let text = value(name) else { return nil }
    guard let root = Digest(hex: text) else {
      throw UsageError("\(name): expected 64 hexadecimal characters")
    }
    return root
  }

  func count(_ name: String, range: ClosedRange<Int>) throws -> Int? {
    guard let text = value(name) else { return nil }
    guard let number = Int(text), range.contains(number) else {
      throw UsageError("\(name): expected a number from \(range.lowerBound) to \(range.upperBound)")
    }
    return number
  }

  func choice<T: RawRepresentable & CaseIterable>(_ name: String, as type: T.Type) throws -> T?
  where T.RawValue == String {
    guard let text = value(name) else { return nil }
    guard let choice = T(rawValue: text) else {
      let allowed = T.allCases.map(\.rawValue).joined(separator: "|")
      throw UsageError("\(name): expected \(allowed), got '\(text)'")
    }
    return choice
  }
}
