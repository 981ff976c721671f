import Foundation

/// One PostgreSQL connection. Every libpq call it makes runs on the connection's own thread (the
/// actor's executor), so a slow query parks that thread and never one of Swift's cooperative pool.
/// Code already running on that thread (the body of ``PostgresPool/withConnection(isolation:_:)``)
/// runs its statements in place, without switching threads.
///
/// Cancelling the task that awaits a query cancels the query on the server (`PQcancel`).
/// Most code should borrow connections from a ``PostgresPool`` instead of making its own.
public actor PostgresConnection {
    /// The connection's thread, as the actor's executor and as a task executor.
    let executor: ThreadExecutor
    let pq: LibPQConnection
    let canceller: QueryCanceller
    /// SQL text → name of the server-side prepared statement made for it.
    var preparedStatements: [String: String] = [:]
    /// The statement found last: a loop running one statement compares its text instead of hashing it.
    private var lastPrepared: (sql: String, name: String)?
    /// The task whose `withConnection` body runs on this connection's thread, while it runs: the one
    /// cancellation handler of that body covers its statements (see `statement(_:)`). Only compared
    /// with the current task, never used to reach the task, and cleared before the body ends.
    var borrower: UnsafeCurrentTask?

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.actorExecutor.asUnownedSerialExecutor()
    }

    /// The connection's thread as a task executor. Code run under
    /// `withTaskExecutorPreference(connection.taskExecutor) { … }` runs on that thread, so its calls to
    /// the connection switch no threads; ``PostgresPool/withConnection(isolation:_:)`` does this for
    /// its body. Holding the executor keeps the thread alive.
    public nonisolated var taskExecutor: any TaskExecutor { executor }

    /// The server process serving this connection (for `pg_cancel_backend`, logs, tests).
    public nonisolated let backendPID: Int32
    /// The server's version as an integer, such as 150018 for 15.18.
    public nonisolated let serverVersion: Int

    private init(executor: ThreadExecutor, pq: LibPQConnection) {
        self.executor = executor
        self.pq = pq
        self.canceller = pq.makeCanceller()
        self.backendPID = pq.backendPID
        self.serverVersion = pq.serverVersion
    }

    /// Opens a connection from a `postgres://` URL or a `key=value` conninfo string. TLS options
    /// (`sslmode`, `sslrootcert`, ...) pass through to libpq unchanged.
    public static func connect(_ connectionString: String) async throws -> PostgresConnection {
        let executor = ThreadExecutor(name: "tern-postgres")
        // The blocking connect runs on the new thread, not on the caller's. The thread ends with the
        // executor: when the actor goes, or here if connecting fails.
        let pq = try await executor.run { () throws(PostgresError) in try LibPQConnection(connectionString: connectionString) }
        return PostgresConnection(executor: executor, pq: pq)
    }

    /// Closes the connection. Later queries throw `connectionClosed`.
    public func close() {
        pq.finish()
    }

    /// True while the connection works and holds no open transaction.
    public var isIdle: Bool { pq.isUsable && pq.isIdle }

    /// True while the connection works.
    public var isUsable: Bool { pq.isUsable }

    // MARK: Statements

    /// Runs a statement and returns its rows.
    /// - Parameter prepared: keep a server-side prepared statement for this SQL text and reuse it
    ///   (worth it for statements run many times on the same connection).
    @discardableResult
    public nonisolated(nonsending) func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await statement { connection throws(PostgresError) in
            try connection.execute(query, prepared: prepared)
        }
    }

    /// Runs SQL text with the simple query protocol, which allows several `;`-separated statements
    /// (a migration file, a script) but no parameters. Returns one result per statement.
    @discardableResult
    public nonisolated(nonsending) func simpleQuery(_ script: PostgresQuery) async throws -> [PostgresResult] {
        guard script.binds.isEmpty else {
            throw PostgresError(code: .encoding, message: "simpleQuery takes no parameters; use query(_:) for statements with interpolated values", query: script.sql)
        }
        return try await statement { connection throws(PostgresError) in
            try connection.pq.simpleQuery(script.sql, afterSend: connection.canceller.resignalIfRequested)
        }
    }

    /// Runs one statement (blocking), through its prepared statement when asked.
    private func execute(_ query: PostgresQuery, prepared: Bool) throws(PostgresError) -> PostgresResult {
        guard prepared else {
            return try pq.execute(query, preparedName: nil, afterSend: canceller.resignalIfRequested)
        }
        let name = try preparedName(for: query)
        do throws(PostgresError) {
            return try pq.execute(query, preparedName: name, afterSend: canceller.resignalIfRequested)
        } catch where error.sqlState == "26000" {
            // The session lost its prepared statements (DISCARD ALL); prepare again once.
            preparedStatements.removeAll()
            lastPrepared = nil
            let again = try preparedName(for: query)
            return try pq.execute(query, preparedName: again, afterSend: canceller.resignalIfRequested)
        }
    }

    /// The name of the prepared statement for this SQL, preparing it on first use.
    func preparedName(for query: PostgresQuery) throws(PostgresError) -> String {
        if let lastPrepared, lastPrepared.sql == query.sql { return lastPrepared.name }
        let name: String
        if let known = preparedStatements[query.sql] {
            name = known
        } else {
            name = "tern_\(preparedStatements.count + 1)"
            try pq.prepare(name: name, query: query)
            preparedStatements[query.sql] = name
        }
        lastPrepared = (query.sql, name)
        return name
    }
}
