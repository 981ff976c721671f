import Foundation
import Synchronization
import TernPostgres
import TernTestSupport
import Testing

/// Blocking libpq calls must never occupy Swift's cooperative threads (two on this machine).
@Suite struct ConcurrencyTests {
    @Test func slowQueriesDoNotStallUnrelatedTasks() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 4)
        defer { Task { await pool.close() } }
        let ticks = Tally()
        let backends = Tally()
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
                ticks.add(0)
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await pool.withConnection { connection in
                        backends.add(Int(connection.backendPID))
                        try await connection.query("SELECT pg_sleep(0.5)")
                    }
                }
            }
            try await group.waitForAll()
        }
        ticker.cancel()
        // 50 × 0.5 s over 4 connections takes about 6 s: a free ticker makes about 600 ticks in that
        // time, a starved one almost none. The bound is generous on purpose.
        #expect(ticks.count > 100)
        // The pool never opened more than its bound.
        #expect(backends.distinct <= 4)
    }

    @Test func cancellingATaskCancelsItsQuery() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let clock = ContinuousClock()
        let started = clock.now
        let query = Task { try await pool.query("SELECT pg_sleep(10)") }
        try await Task.sleep(for: .milliseconds(300))
        query.cancel()
        let result = await query.result
        let elapsed = clock.now - started
        guard case .failure(let error as PostgresError) = result else {
            Issue.record("expected the query to fail as cancelled, got \(result)")
            return
        }
        #expect(error.code == .queryCancelled)
        #expect(error.sqlState == "57014")
        #expect(elapsed < .seconds(8))
        // The connection is usable afterwards.
        #expect(try await pool.query("SELECT 1::int8").scalar(Int.self) == 1)
    }

    @Test func aTaskCancelledBeforeItsQueryNeverRunsIt() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE t (x int)")
        try await pool.withConnection { connection in
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await connection.query("INSERT INTO t VALUES (1)")
            }
            let result = await task.result
            #expect(throws: PostgresError.self) { try result.get() }
        }
        #expect(try await pool.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
    }

    @Test func waitersBeyondThePoolSizeQueueAndCanBeCancelled() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let holder = Task { try await pool.withConnection { try await $0.query("SELECT pg_sleep(1)") } }
        try await Task.sleep(for: .milliseconds(100))
        let waiter = Task { try await pool.withConnection { _ in 1 } }
        try await Task.sleep(for: .milliseconds(100))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        _ = try await holder.value
        #expect(try await pool.withConnection { _ in 2 } == 2)
    }

    @Test func closedPoolRefusesBorrowers() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        try await pool.query("SELECT 1")
        await pool.close()
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error?.code == .poolClosed)
    }
}

/// Counts events and distinct values from many tasks.
final class Tally: Sendable {
    private let state = Mutex<(count: Int, values: Set<Int>)>((0, []))
    func add(_ value: Int) { state.withLock { $0.count += 1; $0.values.insert(value) } }
    var count: Int { state.withLock { $0.count } }
    var distinct: Int { state.withLock { $0.values.count } }
}
