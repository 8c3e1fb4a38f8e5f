import Dispatch
import Foundation
import Synchronization

/// Runs `produce` for positions 0..<count on several worker threads and hands the
/// products to `consume` on the calling thread, one at a time, in position order.
///
/// Hashing records is independent work; comparing them with the chain and writing them
/// out must happen in order. At most `depth` positions are in flight, and position `p`
/// owns slot `p % depth` from production until its consumption ends, so callers can keep
/// one buffer per slot and memory stays bounded by `depth`, whatever the file size.
public func runOrdered<Product>(
  count: Int, workers: Int, depth: Int,
  produce: @escaping (_ position: Int, _ slot: Int) throws -> Product,
  consume: (_ position: Int, _ slot: Int, Product) throws -> Void
) throws {
  precondition(workers >= 1 && depth >= workers)
  if workers == 1 || count == 1 {
    // No thread is worth starting for one worker: produce and consume in turn, here.
    for position in 0..<count {
      try Interruption.check()
      try consume(position, 0, try produce(position, 0))
    }
    return
  }

  // Threads of their own rather than a shared pool: a caller may hold up pool threads that
  // wait for this very pipeline to finish.
  let state = PipelineState<Product>(count: count, depth: depth)
  let finished = DispatchGroup()
  for _ in 0..<min(workers, count) {
    finished.enter()
    Thread.detachNewThread {
      while let position = state.claim() {
        let product = Result { try produce(position, position % depth) }
        state.deliver(product, at: position)
      }
      finished.leave()
    }
  }
  defer {
    state.stop()
    finished.wait()
  }

  for position in 0..<count {
    try Interruption.check()
    let product = try state.take(position).get()
    try consume(position, position % depth, product)
    state.release(position)
  }
}

private final class PipelineState<Product>: @unchecked Sendable {
  private let condition = NSCondition()
  private let count: Int
  private let depth: Int
  private var next = 0
  private var consumed = 0
  private var stopped = false
  private var products: [Result<Product, Error>?]

  init(count: Int, depth: Int) {
    self.count = count
    self.depth = depth
    products = Array(repeating: nil, count: depth)
  }

  /// The next position to produce, once its slot is free; nil when there is no more work.
  func claim() -> Int? {
    condition.lock()
    defer { condition.unlock() }
    while !stopped && next < count && next >= consumed + depth {
      condition.wait()
    }
    guard !stopped && next < count else { return nil }
    next += 1
    return next - 1
  }

  func deliver(_ product: Result<Product, Error>, at position: Int) {
    condition.lock()
    products[position % depth] = product
    condition.broadcast()
    condition.unlock()
  }

  func take(_ position: Int) -> Result<Product, Error> {
    condition.lock()
    defer { condition.unlock() }
    while products[position % depth] == nil {
      condition.wait()
    }
    let product = products[position % depth]!
    products[position % depth] = nil
    return product
  }

  func release(_ position: Int) {
    condition.lock()
    consumed = position + 1
    condition.broadcast()
    condition.unlock()
  }

  func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    condition.unlock()
  }
}

/// Ctrl-C and SIGTERM during long work: the handler only records the signal, and the
/// work stops at the next record, so outputs are cleaned up by the ordinary error path.
public enum Interruption {
  private static let received = Atomic<Int32>(0)

  public static func install() {
    for number in [SIGINT, SIGTERM, SIGHUP] {
      signal(number) { Interruption.received.store($0, ordering: .relaxed) }
    }
  }

  public static func check() throws {
    let number = received.load(ordering: .relaxed)
    if number != 0 { throw ChainError.interrupted(signal: number) }
  }
}
