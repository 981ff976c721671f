import Synchronization

/// A bounded pool of connections to one database.
///
/// Borrow a connection with ``withConnection(isolation:_:)`` or run a transaction with
/// ``withTransaction(isolation:retries:_:)-swift.method``. At most `maxConnections` exist at once; callers
/// beyond that wait in line (and stop waiting if their task is cancelled). A connection that broke,
/// or was handed back inside an unfinished transaction that cannot be rolled back, is closed rather
/// than reused.
public final class PostgresPool: Sendable {
    /// The connection string; kept private because it may hold a password.
    private let connectionString: String
    /// The most connections open at once.
    public let maxConnections: Int
    /// Which server and database, without secrets.
    public let summary: String
    private let state = Mutex(State())

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<Lease, any Error>)] = []
        var nextWaiterID = 0
        var closed = false
    }

    /// What a waiter is handed: a connection, or the right to open a new one.
    private enum Lease: @unchecked Sendable {
        case connection(PostgresConnection)
        case openNew
    }

    /// Makes a pool; no connection is opened until one is needed.
    public init(connectionString: String, maxConnections: Int = 4) throws(PostgresError) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        _ = try PostgresConnectionString.options(connectionString)
        self.connectionString = connectionString
        self.maxConnections = maxConnections
        self.summary = PostgresConnectionString.summary(connectionString)
    }

    /// Lends a connection to `body` and takes it back afterwards, whatever `body` does.
    ///
    /// `body` runs with the connection's thread as its task's preferred executor, so its nonisolated
    /// code runs on that thread next to the connection's libpq calls and a query costs no switch
    /// between threads (the cooperative pool is left alone all the same). Child tasks started in
    /// `body` inherit that preference and so take turns on the thread, waiting while a query of this
    /// connection blocks it; give work that must run meanwhile another executor
    /// (`group.addTask(executorPreference: globalConcurrentExecutor) { … }`). A `body` isolated to
    /// an actor with its own executor (the main actor) runs there, as before.
    @discardableResult
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await acquire()
        // Handing the connection back happens inside the preference too: the pool's checks on it
        // are then same-thread calls as well.
        return try await withTaskExecutorPreference(connection.taskExecutor, isolation: isolation) {
            let onThread = isolation == nil
            if onThread {
                // Onto the connection's thread now, not at the body's first statement, so all of
                // the body runs there (the runtime may skip the hop on entering this closure).
                await Task.yield()
                await connection.adoptBorrower()
            }
            let result: Result
            do {
                // One cancellation handler for the whole body instead of one per statement.
                result = try await withTaskCancellationHandler {
                    try await body(connection)
                } onCancel: {
                    connection.cancelStatement()
                }
            } catch {
                await endBorrow(of: connection, onThread: onThread)
                throw error
            }
            await endBorrow(of: connection, onThread: onThread)
            return result
        }
    }

    /// Runs one statement on a pooled connection.
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await withConnection { try await $0.query(query, prepared: prepared) }
    }

    /// How many borrowers are waiting in line for a connection right now.
    public var waitingBorrowers: Int { state.withLock { $0.waiters.count } }

    /// Closes the idle connections and refuses new borrowers; borrowed ones close when handed back.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the connection pool for \(summary) was closed"))
        }
        for connection in idle { await connection.close() }
    }

    // MARK: Borrowing

    private enum Decision {
        case use(PostgresConnection)
        case openNew
        case wait
        case closed
    }

    private func acquire() async throws -> PostgresConnection {
        let decision: Decision = state.withLock { state in
            if state.closed { return .closed }
            if let connection = state.idle.popLast() { return .use(connection) }
            if state.open < maxConnections {
                state.open += 1
                return .openNew
            }
            return .wait
        }
        switch decision {
        case .use(let connection): return connection
        case .openNew: return try await openConnection()
        case .closed: throw PostgresError(code: .poolClosed, message: "the connection pool for \(summary) is closed")
        case .wait:
            switch try await waitInLine() {
            case .connection(let connection): return connection
            case .openNew: return try await openConnection()
            }
        }
    }

    private func waitInLine() async throws -> Lease {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLock { state -> (any Error)? in
                    if Task.isCancelled { return CancellationError() }
                    if state.closed {
                        return PostgresError(code: .poolClosed, message: "stopped waiting for a connection to \(summary): the pool was closed")
                    }
                    // A connection may have come back between the first look and now.
                    if let connection = state.idle.popLast() {
                        continuation.resume(returning: .connection(connection))
                        return nil
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let outcome { continuation.resume(throwing: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Lease, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Opens a connection for a slot already counted in `open`; gives the slot back on failure.
    private func openConnection() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(connectionString)
        } catch {
            handBackSlot()
            throw error
        }
    }

    /// A slot freed (a connection closed or never opened): let the next waiter open one.
    private func handBackSlot() {
        let waiter = state.withLock { state -> CheckedContinuation<Lease, any Error>? in
            if !state.waiters.isEmpty && !state.closed {
                return state.waiters.removeFirst().continuation
            }
            state.open -= 1
            return nil
        }
        waiter?.resume(returning: .openNew)
    }

    /// After a `withConnection` body: forget its borrower and cancellation, and take the connection back.
    private func endBorrow(of connection: PostgresConnection, onThread: Bool) async {
        if onThread { await connection.dropBorrower() }
        connection.forgetCancellation()
        await release(connection)
    }

    private func release(_ connection: PostgresConnection) async {
        var reusable = await connection.isolated { $0.isIdle }
        if !reusable, await connection.isolated({ $0.isUsable }) {
            // Handed back inside a transaction (a caller's own BEGIN): roll it back before reuse.
            _ = try? await connection.simpleQuery("ROLLBACK")
            reusable = await connection.isolated { $0.isIdle }
        }
        guard reusable else {
            await connection.close()
            handBackSlot()
            return
        }
        let (waiter, closeIt) = state.withLock { state -> (CheckedContinuation<Lease, any Error>?, Bool) in
            if state.closed {
                state.open -= 1
                return (nil, true)
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, false) }
            state.idle.append(connection)
            return (nil, false)
        }
        if closeIt { await connection.close() }
        waiter?.resume(returning: .connection(connection))
    }
}
