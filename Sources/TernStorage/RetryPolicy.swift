import Foundation

/// Capped exponential backoff with full jitter for transient store failures.
///
/// Attempt n (0-based) waits a uniformly random time in `0 ..< min(cap, base × 2ⁿ)` before the
/// next try. Jitter spreads the retries of many parallel transfers so they do not hit a throttled
/// store in lockstep. The clock and the random source are injected so tests run without sleeping.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Waits for a delay; `Task.sleep` outside tests.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// Returns a fraction in 0..<1.
    public var random: @Sendable () -> Double

    public init(
        maxAttempts: Int = 6,
        baseDelay: Duration = .milliseconds(100),
        maxDelay: Duration = .seconds(20),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.sleep = sleep
        self.random = random
    }

    /// The standard policy: 6 tries, 100 ms doubling to at most 20 s.
    public static let standard = RetryPolicy()

    /// The wait before try `attempt + 1`.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let exponent = min(attempt, 30)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        return ceiling * random()
    }

    /// Runs `operation` until it succeeds, fails with a non-transient error, or the tries run out;
    /// the last error is thrown as it was.
    public func run<T>(_ operation: () async throws(StoreError) -> T) async throws(StoreError) -> T {
        var attempt = 0
        while true {
            do {
                return try await operation()
            } catch {
                attempt += 1
                guard error.isTransient, attempt < maxAttempts else { throw error }
                do {
                    try await sleep(delay(afterAttempt: attempt - 1))
                } catch let cancellation {
                    _ = cancellation
                    throw error
                }
            }
        }
    }
}
