import Foundation
import Synchronization
import TernPostgres
import TernTestSupport
import Testing

/// Blocking libpq calls must never occupy Swift's cooperative threads (two on this machine).
@Suite struct ConcurrencyTests {
    /// Fifty queries over a pool of four: four block inside the server (on an advisory lock held
    /// elsewhere) and 46 wait for a connection, while this machine
    /// has two cooperative threads. If a blocked libpq call occupied a cooperative thread, the
    /// unrelated work below could never run and the test would hit its time limit; nothing here
    /// depends on how fast the machine is.
    @Test(.timeLimit(.minutes(1))) func blockedQueriesDoNotStallUnrelatedTasks() async throws {
        let database = try await TestDatabase.fresh()
        let pool = try PostgresPool(connectionString: database, maxConnections: 4)
        defer { Task { await pool.close() } }
        let holder = try await PostgresConnection.connect(database)
        defer { Task { await holder.close() } }
        try await holder.query("SELECT pg_advisory_lock(4242)")
        let backends = Tally()
        // 50 queries over a pool of 4: four block inside the server, 46 wait for a connection.
        let blocked = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            backends.add(Int(connection.backendPID))
                            try await connection.query("SELECT pg_advisory_lock_shared(4242)")
                            try await connection.query("SELECT pg_advisory_unlock_shared(4242)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        // Wait (by polling the server, not a clock) until four really are blocked on the lock and
        // the other 46 are queued for a connection.
        var waiting = 0
        while waiting < 4 || pool.waitingBorrowers < 46 {
            waiting = try await holder.query("""
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """).scalar(Int.self)
            await Task.yield()
        }
        // Unrelated work on the cooperative pool completes while all 50 are stuck.
        let sum = await withTaskGroup(of: Int.self) { group in
            for value in 1...100 { group.addTask { await Task.yield(); return value } }
            return await group.reduce(0, +)
        }
        #expect(sum == 5050)
        try await holder.query("SELECT pg_advisory_unlock(4242)")
        try await blocked.value
        #expect(backends.count == 50)
        // The pool never opened more than its bound.
        #expect(backends.distinct <= 4)
    }

    @Test func cancellingATaskCancelsItsQuery() async throws {
        let database = try await TestDatabase.fresh()
        let pool = try PostgresPool(connectionString: database, maxConnections: 1)
        defer { Task { await pool.close() } }
        let observer = try await PostgresConnection.connect(database)
        defer { Task { await observer.close() } }
        let query = Task { try await pool.query("SELECT pg_sleep(10)") }
        // Cancel only once the server is really running the query (polling the server, not a clock),
        // so a loaded machine cannot turn this into the cancelled-before-sending case.
        while try await observer.query("""
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(10)'
            """).scalar(Int.self) == 0 {
            await Task.yield()
        }
        query.cancel()
        let result = await query.result
        guard case .failure(let error as PostgresError) = result else {
            Issue.record("expected the query to fail as cancelled, got \(result)")
            return
        }
        #expect(error.code == .queryCancelled)
        #expect(error.sqlState == "57014")
        // A cancelled pg_sleep(10) ends with 57014: the server was told, so it did not run to the end.
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
        // The holder says when it has the only connection, and keeps it until told to let go.
        let (held, heldSignal) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await pool.withConnection { _ in
                heldSignal.yield()
                for await _ in release { break }
            }
        }
        for await _ in held { break }
        let waiter = Task { try await pool.withConnection { _ in 1 } }
        while pool.waitingBorrowers == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        releaseSignal.yield()
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
