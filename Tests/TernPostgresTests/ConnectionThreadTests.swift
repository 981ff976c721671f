import Foundation
import Glibc
import TernPostgres
import TernTestSupport
import Testing

/// `withConnection` runs its body on the borrowed connection's own thread (so a query switches no
/// threads), and every way out of a borrow ends: none leaves a task waiting on a thread that has ended.
@Suite struct ConnectionThreadTests {
    @Test func theBodyRunsOnTheConnectionsThread() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("SELECT 1")
        let (atStart, ofActor, afterQuery) = try await pool.withConnection { connection in
            let atStart = pthread_self()
            let ofActor = await thread(of: connection)
            try await connection.query("SELECT 1")
            return (atStart, ofActor, pthread_self())
        }
        #expect(atStart == ofActor)
        #expect(afterQuery == ofActor)
        // Outside the borrow the task is back where it was, off the connection's thread.
        #expect(pthread_self() != ofActor)
    }

    @Test func aBodyIsolatedToAnActorStillRunsIsolated() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 2)
        defer { Task { await pool.close() } }
        let tally = QueryTally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { try await tally.count(through: pool, times: 50) }
            }
            try await group.waitForAll()
        }
        #expect(await tally.total == 200)
    }

    /// A borrow that returns, throws, loses its connection, leaves a transaction open, or is
    /// cancelled while its body sleeps on the connection's thread: all of them, at once, end.
    @Test(.timeLimit(.minutes(1))) func everyWayOutOfABorrowEnds() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 2)
        try await pool.query("CREATE TABLE t (x int)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<6 {
                group.addTask {
                    for round in 0..<20 {
                        try await borrow(pool, way: (worker + round) % 5, round: round)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Transactions left open were rolled back, never committed by the next borrower.
        #expect(try await pool.query("SELECT count(*) FROM t WHERE x < 0").scalar(Int.self) == 0)
        #expect(try await pool.query("SELECT count(*) FROM t WHERE x >= 0").scalar(Int.self) > 0)
        await pool.close()
    }

    @Test(.timeLimit(.minutes(1))) func closingThePoolDuringABorrowEndsItCleanly() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let (resume, resumeSignal) = AsyncStream.makeStream(of: Void.self)
        let borrower = Task {
            try await pool.withConnection { connection in
                startedSignal.yield()
                // Suspended (and resumed) on the connection's thread while the pool closes.
                for await _ in resume { break }
                return try await connection.query("SELECT 7::int8").scalar(Int.self)
            }
        }
        for await _ in started { break }
        await pool.close()
        resumeSignal.yield()
        // The borrow finishes; handing the connection back closes it and its thread ends.
        #expect(try await borrower.value == 7)
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error?.code == .poolClosed)
    }

    // MARK: Cancellation on the connection's thread

    /// A borrower cancelled between two statements sends no more, and its cancellation does not
    /// follow the connection to the next borrower.
    @Test(.timeLimit(.minutes(1))) func aBorrowerCancelledBetweenStatementsSendsNoMore() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE t (x int)")
        let (firstDone, firstDoneSignal) = AsyncStream.makeStream(of: Void.self)
        let borrower = Task {
            try await pool.withConnection { connection in
                try await connection.query("INSERT INTO t VALUES (1)")
                firstDoneSignal.yield()
                // Runs on until cancelled, with no statement in flight.
                while !Task.isCancelled { await Task.yield() }
                try await connection.query("INSERT INTO t VALUES (2)")
            }
        }
        for await _ in firstDone { break }
        borrower.cancel()
        let error = await #expect(throws: PostgresError.self) { try await borrower.value }
        #expect(error?.code == .queryCancelled)
        #expect(try await pool.query("SELECT array_agg(x)::int8[] FROM t").scalar([Int].self) == [1])
    }

    @Test func aBorrowerCancelledBeforeItsBodyRunsNoStatement() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE t (x int)")
        let borrower = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await pool.withConnection { try await $0.query("INSERT INTO t VALUES (1)") }
        }
        await #expect(throws: PostgresError.self) { try await borrower.value }
        #expect(try await pool.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
    }

    /// A task on the connection's thread that is not the borrower (here one given the preference
    /// itself) has its own cancellation handler: cancelling it cancels its running statement.
    @Test(.timeLimit(.minutes(1))) func aStatementInPlaceOfAnotherTaskIsCancelledToo() async throws {
        let database = try await TestDatabase.fresh()
        let connection = try await PostgresConnection.connect(database)
        let observer = try await PostgresConnection.connect(database)
        defer { Task { await connection.close(); await observer.close() } }
        let sleeper = Task(executorPreference: connection.taskExecutor) {
            try await connection.query("SELECT pg_sleep(10)")
        }
        while try await observer.query("""
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(10)'
            """).scalar(Int.self) == 0 {
            await Task.yield()
        }
        sleeper.cancel()
        let error = await #expect(throws: PostgresError.self) { try await sleeper.value }
        #expect(error?.sqlState == "57014")
        #expect(try await connection.query("SELECT 1::int8").scalar(Int.self) == 1)
    }

    /// The thread outlives the connection actor while a task still prefers it: a task that drops
    /// the last reference to its connection inside the preference and then suspends resumes. (When
    /// the thread ended with the actor, the resumption went to a queue nobody read, and hung.)
    @Test(.timeLimit(.minutes(1))) func droppingTheConnectionInsideItsPreferenceStrandsNothing() async throws {
        var connection: PostgresConnection? = try await PostgresConnection.connect(try await TestDatabase.fresh())
        let executor = try #require(connection).taskExecutor
        try await withTaskExecutorPreference(executor) {
            try await closeAndDrop(&connection)
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(connection == nil)
    }

    /// Child tasks inherit the connection's thread; one that must run while the connection is
    /// blocked says so with another executor preference.
    @Test(.timeLimit(.minutes(1))) func aChildTaskThatMustRunMeanwhileLeavesTheThread() async throws {
        let database = try await TestDatabase.fresh()
        let pool = try PostgresPool(connectionString: database, maxConnections: 1)
        defer { Task { await pool.close() } }
        let holder = try await PostgresConnection.connect(database)
        defer { Task { await holder.close() } }
        try await holder.query("SELECT pg_advisory_lock(4243)")
        try await pool.withConnection { connection in
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Blocks the connection's thread until the lock is free.
                group.addTask { try await connection.query("SELECT pg_advisory_lock_shared(4243)") }
                // Frees it, from the global executor: on the blocked thread it could never start.
                group.addTask(executorPreference: globalConcurrentExecutor) {
                    while try await holder.query("""
                        SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243 AND NOT granted
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        """).scalar(Int.self) == 0 {
                        await Task.yield()
                    }
                    try await holder.query("SELECT pg_advisory_unlock(4243)")
                }
                try await group.waitForAll()
            }
        }
    }
}

/// The thread a connection's actor runs on.
private func thread(of connection: isolated PostgresConnection) -> pthread_t {
    pthread_self()
}

/// Closes the connection and lets go of it, so that (being the only reference) the actor goes.
private func closeAndDrop(_ connection: inout PostgresConnection?) async throws {
    await connection?.close()
    connection = nil
}

private struct Marker: Error {}

/// One borrow, ending one of five ways.
private func borrow(_ pool: PostgresPool, way: Int, round: Int) async throws {
    switch way {
    case 0:
        try await pool.query("INSERT INTO t VALUES (\(round))", prepared: true)
    case 1:
        await #expect(throws: Marker.self) { try await pool.withConnection { _ in throw Marker() } }
    case 2:
        // The server ends the session under the body; the pool closes that connection.
        await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try await $0.query("SELECT pg_terminate_backend(pg_backend_pid())") }
        }
    case 3:
        try await pool.withConnection { connection in
            try await connection.query("BEGIN")
            try await connection.query("INSERT INTO t VALUES (-1)")
        }
    default:
        let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
        let sleeper = Task {
            try await pool.withConnection { _ in
                startedSignal.yield()
                try await Task.sleep(for: .seconds(30))
            }
        }
        for await _ in started { break }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
}

/// Borrows from its own isolation, touching its state inside the body.
private actor QueryTally {
    var total = 0

    func count(through pool: PostgresPool, times: Int) async throws {
        for _ in 0..<times {
            try await pool.withConnection { connection in
                total += try await connection.query("SELECT 1::int8").scalar(Int.self)
            }
        }
    }
}
