import ArgumentParser
import TernPostgres

/// How the Tern side sends its single-row SELECTs. Every mode borrows from one `PostgresPool` with
/// as many connections as clients.
enum Mode: String, CaseIterable, Sendable, Encodable, ExpressibleByArgument {
    /// `query(_:)` with `prepared: false` in a `withConnection` body: parse, plan and run every time.
    case unprepared
    /// `query(_:prepared: true)` in a `withConnection` body held for the run, as a pgbench client
    /// holds its connection: a server-side prepared statement, one round trip per SELECT.
    case prepared
    /// `pool.query(_:prepared: true)` per SELECT: a borrow per statement, so each one also moves
    /// the task from Swift's cooperative pool to the connection's thread and back.
    case poolQuery = "pool-query"
    /// Diagnostic: `.prepared` with the body's loop put back on Swift's cooperative pool
    /// (`withTaskExecutorPreference(globalConcurrentExecutor)`), as code that calls a connection
    /// from an ordinary task: two thread switches per SELECT. What `prepared` measured before
    /// `withConnection` ran its body on the connection's thread.
    case unpinned
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

    /// Runs `mode` from `clients` tasks at once (a task group) for `duration`.
    /// - Returns: SELECTs completed and the wall time they took.
    func run(_ mode: Mode, on pool: PostgresPool, clients: Int, for duration: Duration) async throws -> (queries: Int, elapsed: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    var random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
                    return try await loop(mode, on: pool, until: deadline, random: &random)
                }
            }
            return try await group.reduce(0, +)
        }
        return (total, clock.now - start)
    }

    /// One client's share: SELECT until the deadline, checking each answer.
    private func loop(_ mode: Mode, on pool: PostgresPool, until deadline: ContinuousClock.Instant, random: inout SplitMix64) async throws -> Int {
        switch mode {
        case .unprepared, .prepared:
            return try await pool.withConnection { connection in
                try await selects(on: connection, prepared: mode == .prepared, until: deadline, random: &random)
            }
        case .unpinned:
            return try await pool.withConnection { connection in
                try await withTaskExecutorPreference(globalConcurrentExecutor) {
                    try await selects(on: connection, prepared: true, until: deadline, random: &random)
                }
            }
        case .poolQuery:
            let clock = ContinuousClock()
            var count = 0
            while clock.now < deadline {
                let aid = Int32.random(in: 1...accounts, using: &random)
                try Self.check(try await pool.query(Self.select(aid), prepared: true))
                count += 1
            }
            return count
        case .pipelined:
            return try await pool.withConnection { connection in
                let clock = ContinuousClock()
                var count = 0
                var queries: [PostgresQuery] = []
                queries.reserveCapacity(batch)
                while clock.now < deadline {
                    queries.removeAll(keepingCapacity: true)
                    for _ in 0..<batch { queries.append(Self.select(Int32.random(in: 1...accounts, using: &random))) }
                    let results = try await connection.pipeline(queries, prepared: true)
                    for result in results { try Self.check(result) }
                    count += results.count
                }
                return count
            }
        }
    }

    /// One SELECT after another on one connection until the deadline.
    private func selects(on connection: PostgresConnection, prepared: Bool, until deadline: ContinuousClock.Instant, random: inout SplitMix64) async throws -> Int {
        let clock = ContinuousClock()
        var count = 0
        while clock.now < deadline {
            let aid = Int32.random(in: 1...accounts, using: &random)
            try Self.check(try await connection.query(Self.select(aid), prepared: prepared))
            count += 1
        }
        return count
    }

    /// Every account exists, so every SELECT returns exactly one row with a balance.
    private static func check(_ result: PostgresResult) throws {
        guard result.count == 1 else { throw BenchError("a SELECT returned \(result.count) rows, expected 1") }
        _ = try result.scalar(Int.self)
    }
}
