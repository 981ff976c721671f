/// The isolation level of a transaction.
public enum PostgresIsolation: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension PostgresPool {
    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    ///
    /// - Parameters:
    ///   - level: the isolation level.
    ///   - retries: how many times to run `body` again after a serialization failure (40001) or a
    ///     deadlock (40P01). `body` must then be safe to repeat: it should only touch the database.
    @discardableResult
    public func withTransaction<Result>(
        isolation: isolated (any Actor)? = #isolation,
        level: PostgresIsolation = .readCommitted,
        retries: Int = 0,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        var attempt = 0
        while true {
            do {
                return try await withConnection { connection in
                    try await connection.withTransaction(level: level, body)
                }
            } catch let error as PostgresError where error.isTransient && attempt < retries {
                attempt += 1
            }
        }
    }
}

extension PostgresConnection {
    /// Runs `body` in a transaction on this connection: committed when it returns, rolled back when it throws.
    @discardableResult
    public func withTransaction<Result>(
        isolation: isolated (any Actor)? = #isolation,
        level: PostgresIsolation = .readCommitted,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await query(PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL \(level.rawValue)"))
        let result: Result
        do {
            result = try await body(self)
        } catch {
            // Roll back even when the task is cancelled, so the connection is clean for the pool.
            _ = try? await Task { try await self.simpleQuery("ROLLBACK") }.value
            throw error
        }
        try await query("COMMIT")
        return result
    }
}
