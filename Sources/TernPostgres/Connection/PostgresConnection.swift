import Foundation

/// One PostgreSQL connection. Every libpq call it makes runs on the connection's own thread (the
/// actor's executor), so a slow query parks that thread and never one of Swift's cooperative pool.
///
/// Cancelling the task that awaits a query cancels the query on the server (`PQcancel`).
/// Most code should borrow connections from a ``PostgresPool`` instead of making its own.
public actor PostgresConnection {
    private let executor: ThreadExecutor
    let pq: LibPQConnection
    let canceller: QueryCanceller
    /// SQL text → name of the server-side prepared statement made for it.
    var preparedStatements: [String: String] = [:]

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

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

    deinit {
        executor.shutdown()
    }

    /// Opens a connection from a `postgres://` URL or a `key=value` conninfo string. TLS options
    /// (`sslmode`, `sslrootcert`, ...) pass through to libpq unchanged.
    public static func connect(_ connectionString: String) async throws -> PostgresConnection {
        let executor = ThreadExecutor(name: "tern-postgres")
        do {
            // The blocking connect runs on the new thread, not on the caller's.
            let pq = try await executor.run { () throws(PostgresError) in try LibPQConnection(connectionString: connectionString) }
            return PostgresConnection(executor: executor, pq: pq)
        } catch {
            executor.shutdown()
            throw error
        }
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
    public func query(_ query: PostgresQuery, prepared: Bool = false) async throws -> PostgresResult {
        try await cancellable { () throws(PostgresError) in
            guard prepared else {
                return try pq.execute(query, preparedName: nil, afterSend: canceller.resignalIfRequested)
            }
            let name = try preparedName(for: query)
            do throws(PostgresError) {
                return try pq.execute(query, preparedName: name, afterSend: canceller.resignalIfRequested)
            } catch where error.sqlState == "26000" {
                // The session lost its prepared statements (DISCARD ALL); prepare again once.
                preparedStatements.removeAll()
                let again = try preparedName(for: query)
                return try pq.execute(query, preparedName: again, afterSend: canceller.resignalIfRequested)
            }
        }
    }

    /// Runs SQL text with the simple query protocol, which allows several `;`-separated statements
    /// (a migration file, a script) but no parameters. Returns one result per statement.
    @discardableResult
    public func simpleQuery(_ script: PostgresQuery) async throws -> [PostgresResult] {
        guard script.binds.isEmpty else {
            throw PostgresError(code: .encoding, message: "simpleQuery takes no parameters; use query(_:) for statements with interpolated values", query: script.sql)
        }
        return try await cancellable { () throws(PostgresError) in
            try pq.simpleQuery(script.sql, afterSend: canceller.resignalIfRequested)
        }
    }

    /// The name of the prepared statement for this SQL, preparing it on first use.
    func preparedName(for query: PostgresQuery) throws(PostgresError) -> String {
        if let name = preparedStatements[query.sql] { return name }
        let name = "tern_\(preparedStatements.count + 1)"
        try pq.prepare(name: name, query: query)
        preparedStatements[query.sql] = name
        return name
    }

    /// Runs blocking libpq work so that cancelling the awaiting task cancels it on the server.
    func cancellable<Result>(_ body: () throws(PostgresError) -> Result) async throws -> Result {
        try await withTaskCancellationHandler {
            guard canceller.begin() else {
                canceller.end()
                throw PostgresError(code: .queryCancelled, message: "the task was cancelled before the statement was sent")
            }
            defer { canceller.end() }
            return try body()
        } onCancel: { [canceller] in
            canceller.requestCancel()
        }
    }
}

