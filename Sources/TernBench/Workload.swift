import ArgumentParser
import TernPostgres

/// How the Tern side sends its single-row SELECTs.
enum Mode: String, CaseIterable, Sendable, Encodable, ExpressibleByArgument {
    /// `query(_:)` with `prepared: false`: parse, plan and run every time (unnamed statement).
    case unprepared
    /// `query(_:prepared: true)`: a server-side prepared statement, one round trip per SELECT.
    case prepared
    /// Diagnostic: `.prepared`, but the loop runs isolated to the connection actor (an `isolated`
    /// parameter), so no query pays the two executor hops (task → connection thread → task).
    case preparedIsolated = "prepared-isolated"
    /// `pipeline(_:prepared: true)` with `batch` SELECTs per call: one round trip per batch.
    case pipelined
}

/// A small, fast, syscall-free PRNG (SplitMix64), one per connection task, so drawing an account
/// number costs nothing next to a round trip (`SystemRandomNumberGenerator` calls getrandom(2)).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs pgbench's select-only transaction through TernPostgres.
struct Workload: Sendable {
    /// Number of rows in pgbench_accounts (100,000 × scale).
    let accounts: Int32
    /// SELECTs per pipeline call in `.pipelined` mode.
    let batch: Int

    /// The same statement `pgbench -S` runs, with a uniformly random account.
    static func select(_ aid: Int32) -> PostgresQuery {
        "SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)"
    }

    /// Runs `mode` on every connection at once (one task per connection) for `duration`.
    /// - Returns: SELECTs completed and the wall time they took.
    func run(_ mode: Mode, on connections: [PostgresConnection], for duration: Duration) async throws -> (queries: Int, elapsed: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for connection in connections {
                group.addTask {
                    var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
                    return try await loop(mode, on: connection, until: deadline, random: &random)
                }
            }
            return try await group.reduce(0, +)
        }
        return (total, clock.now - start)
    }

    /// One connection's share: SELECT until the deadline, checking each answer.
    private func loop(_ mode: Mode, on connection: PostgresConnection, until deadline: ContinuousClock.Instant, random: inout SplitMix64) async throws -> Int {
        let clock = ContinuousClock()
        var count = 0
        switch mode {
        case .unprepared, .prepared:
            let prepared = mode == .prepared
            while clock.now < deadline {
                let aid = Int32.random(in: 1...accounts, using: &random)
                let result = try await connection.query(Self.select(aid), prepared: prepared)
                try check(result)
                count += 1
            }
        case .preparedIsolated:
            let (done, _) = try await Self.isolatedLoop(on: connection, accounts: accounts, until: deadline, random: random)
            count = done
        case .pipelined:
            var queries: [PostgresQuery] = []
            queries.reserveCapacity(batch)
            while clock.now < deadline {
                queries.removeAll(keepingCapacity: true)
                for _ in 0..<batch { queries.append(Self.select(Int32.random(in: 1...accounts, using: &random))) }
                let results = try await connection.pipeline(queries, prepared: true)
                for result in results { try check(result) }
                count += results.count
            }
        }
        return count
    }

    /// The prepared loop run on the connection's own executor: each `query` call is then a plain
    /// call on the same thread, with no switch to another thread and back.
    private static func isolatedLoop(on connection: isolated PostgresConnection, accounts: Int32, until deadline: ContinuousClock.Instant, random: SplitMix64) async throws -> (Int, SplitMix64) {
        let clock = ContinuousClock()
        var random = random
        var count = 0
        while clock.now < deadline {
            let aid = Int32.random(in: 1...accounts, using: &random)
            let result = try await connection.query(select(aid), prepared: true)
            try checkRow(result)
            count += 1
        }
        return (count, random)
    }

    /// Every account exists, so every SELECT returns exactly one row with a balance.
    private func check(_ result: PostgresResult) throws { try Self.checkRow(result) }

    private static func checkRow(_ result: PostgresResult) throws {
        guard result.count == 1 else { throw BenchError("a SELECT returned \(result.count) rows, expected 1") }
        _ = try result.scalar(Int.self)
    }
}
