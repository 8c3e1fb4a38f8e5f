/// SHA-256 as FIPS 180-4 section 6.2 states it, written for clarity rather than speed.
///
/// The library hashes through libcrypto; checking its chains against a hash written
/// independently here means a mistake in how the library feeds libcrypto cannot also
/// hide in the expected values.
struct ReferenceSHA256 {
  private static let roundConstants: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4,
    0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe,
    0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f,
    0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da, 0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7,
    0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc,
    0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
    0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070, 0x19a4_c116,
    0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7,
    0xc671_78f2,
  ]
  private static let initialState: [UInt32] = [
    0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab,
    0x5be0_cd19,
  ]

  static func hash(_ message: [UInt8]) -> [UInt8] {
    // Padding: a one bit, zeros up to 56 mod 64, then the length in bits, big-endian.
    let bitLength = UInt64(message.count) * 8
    let fullBlocks = message.count / 64 * 64
    var tail = Array(message[fullBlocks...]) + [0x80]
    while tail.count % 64 != 56 { tail.append(0) }
    tail += (0..<8).map { UInt8(truncatingIfNeeded: bitLength >> (56 - 8 * $0)) }

    var state = initialState
    var schedule = [UInt32](repeating: 0, count: 64)
    for start in stride(from: 0, to: fullBlocks, by: 64) {
      compress(message, at: start, into: &state, schedule: &schedule)
    }
    for start in stride(from: 0, to: tail.count, by: 64) {
      compress(tail, at: start, into: &state, schedule: &schedule)
    }
    return state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * $0)) }
    }
  }

  private static func compress(
    _ bytes: [UInt8], at start: Int, into state: inout [UInt32], schedule: inout [UInt32]
  ) {
    for t in 0..<16 {
      let offset = start + 4 * t
      schedule[t] =
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
        | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }
    for t in 16..<64 {
      let w15 = schedule[t - 15]
      let w2 = schedule[t - 2]
      let sigma0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3)
      let sigma1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10)
      schedule[t] = sigma1 &+ schedule[t - 7] &+ sigma0 &+ schedule[t - 16]
    }

    var (a, b, c, d) = (state[0], state[1], state[2], state[3])
    var (e, f, g, h) = (state[4], state[5], state[6], state[7])
    for t in 0..<64 {
      let choice = (e & f) ^ (~e & g)
      let majority = (a & b) ^ (a & c) ^ (b & c)
      let t1 =
        h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ choice &+ roundConstants[t]
        &+ schedule[t]
      let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ majority
      (h, g, f, e) = (g, f, e, d &+ t1)
      (d, c, b, a) = (c, b, a, t1 &+ t2)
    }

    for (index, word) in [a, b, c, d, e, f, g, h].enumerated() {
      state[index] = state[index] &+ word
    }
  }

  private static func rotr(_ word: UInt32, _ count: UInt32) -> UInt32 {
    word >> count | word << (32 - count)
  }
}

/// A chain computed straight from its definition, with nothing shared with the encoder:
/// record i is chunk i followed by the hash of record i+1, and the last record is the last
/// chunk alone.
struct ReferenceChain {
  let records: [[UInt8]]
  let root: [UInt8]

  init(file: [UInt8], chunkSize: Int) {
    var chunks = stride(from: 0, to: file.count, by: chunkSize).map {
      Array(file[$0..<min($0 + chunkSize, file.count)])
    }
    if chunks.isEmpty { chunks = [[]] }

    var records = [[UInt8]](repeating: [], count: chunks.count)
    var next: [UInt8] = []
    for index in chunks.indices.reversed() {
      records[index] = chunks[index] + next
      next = ReferenceSHA256.hash(records[index])
    }
    self.records = records
    root = next
  }

  var hexRoot: String { root.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
  func leftPadded(to width: Int) -> String {
    String(repeating: "0", count: max(0, width - count)) + self
  }
}
