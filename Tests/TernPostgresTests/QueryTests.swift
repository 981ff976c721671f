import Foundation
import TernPostgres
import TernTestSupport
import Testing

@Suite struct QueryTests {
    @Test func injectionAttemptIsStoredAsALiteral() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE users (name text)")
        let hostile = "x'); DROP TABLE users; --"
        try await pool.query("INSERT INTO users (name) VALUES (\(hostile))")
        #expect(try await pool.query("SELECT name FROM users").scalar(String.self) == hostile)
        #expect(try await pool.query("SELECT count(*) FROM users WHERE name = \(hostile)").scalar(Int.self) == 1)
        let table = "users\"; DROP TABLE users; --"
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT * FROM \(identifier: table)") }
        #expect(error?.sqlState == "42P01")  // undefined table: the name stayed one quoted identifier
        #expect(try await pool.query("SELECT count(*) FROM users").scalar(Int.self) == 1)
    }

    @Test func uniqueViolationCarriesSQLStateAndConstraint() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE jobs (id int8 CONSTRAINT jobs_pkey PRIMARY KEY, name text)")
        try await pool.query("INSERT INTO jobs VALUES (1, 'a')")
        let error = await #expect(throws: PostgresError.self) { try await pool.query("INSERT INTO jobs VALUES (\(1), 'b')") }
        #expect(error?.code == .server)
        #expect(error?.sqlState == "23505")
        #expect(error?.constraint == "jobs_pkey")
        #expect(error?.table == "jobs")
        #expect(error?.detail == "Key (id)=(1) already exists.")
        #expect(error?.description.contains("23505") == true)
        #expect(error?.query?.contains("INSERT INTO jobs") == true)
    }

    @Test func queryDescriptionNeverShowsBoundValues() {
        let secret = "hunter2"
        let query: PostgresQuery = "UPDATE creds SET token = \(secret) WHERE id = \(7)"
        #expect(query.sql == "UPDATE creds SET token = $1 WHERE id = $2")
        #expect(!query.description.contains(secret))
        #expect(query.binds.count == 2)
    }

    @Test func stringWithNULIsAnEncodingError() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT \("a\u{0}b")") }
        #expect(error?.code == .encoding)
    }

    @Test func preparedStatementsAreReusedAndSurviveDiscardAll() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.withConnection { connection in
            for value in 0..<5 {
                #expect(try await connection.query("SELECT \(value)::int8 + 1", prepared: true).scalar(Int.self) == value + 1)
            }
            let count = try await connection.query("SELECT count(*) FROM pg_prepared_statements").scalar(Int.self)
            #expect(count == 1)
            try await connection.simpleQuery("DISCARD ALL")
            #expect(try await connection.query("SELECT \(41)::int8 + 1", prepared: true).scalar(Int.self) == 42)
        }
    }

    @Test func simpleQueryRunsScriptsAndRefusesParameters() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.withConnection { connection in
            let results = try await connection.simpleQuery("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t")
            #expect(results.count == 3)
            #expect(try results[2].scalar(Int.self) == 3)
            #expect(results[1].affectedRows == 2)
            await #expect(throws: PostgresError.self) { try await connection.simpleQuery("SELECT \(1)") }
        }
    }

    @Test func transactionsCommitOnReturnAndRollBackOnThrow() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 2)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE events (id int8)")
        try await pool.withTransaction { connection in
            try await connection.query("INSERT INTO events VALUES (1)")
        }
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await pool.withTransaction { connection in
                try await connection.query("INSERT INTO events VALUES (2)")
                throw Abort()
            }
        }
        #expect(try await pool.query("SELECT array_agg(id) FROM events").scalar([Int].self) == [1])
        // The connection that rolled back is clean and reused.
        #expect(try await pool.withConnection { await $0.isIdle })
    }

    @Test func transactionRetriesOnSerializationFailure() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE attempts (n int)")
        let counter = AttemptCounter()
        let result = try await pool.withTransaction(level: .serializable, retries: 2) { connection in
            let attempt = counter.increment()
            try await connection.query("INSERT INTO attempts VALUES (\(attempt))")
            if attempt == 1 {
                try await connection.simpleQuery("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
            }
            return attempt
        }
        #expect(result == 2)
        #expect(try await pool.query("SELECT array_agg(n) FROM attempts").scalar([Int].self) == [2])
        // Without retries the error reaches the caller.
        let error = await #expect(throws: PostgresError.self) {
            _ = try await pool.withTransaction { connection in
                try await connection.simpleQuery("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
            }
        }
        #expect(error?.isTransient == true)
    }

    @Test func handingBackAnOpenTransactionRollsItBack() async throws {
        let pool = try await TestDatabase.freshPool(maxConnections: 1)
        defer { Task { await pool.close() } }
        try await pool.query("CREATE TABLE t (x int)")
        try await pool.withConnection { connection in
            try await connection.query("BEGIN")
            try await connection.query("INSERT INTO t VALUES (1)")
        }
        #expect(try await pool.query("SELECT count(*) FROM t").scalar(Int.self) == 0)
    }
}

/// Counts attempts of a retried transaction body.
final class AttemptCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
