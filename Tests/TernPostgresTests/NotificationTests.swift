import TernPostgres
import TernTestSupport
import Testing

@Suite struct NotificationTests {
    @Test func notificationsArriveAndResumeAfterTheBackendIsKilled() async throws {
        let url = try await TestDatabase.fresh()
        let pool = try PostgresPool(connectionString: url, maxConnections: 1)
        defer { Task { await pool.close() } }
        let events = PostgresListener.events(connectionString: url, channels: ["jobs", "Mixed Case"])
        var iterator = events.makeAsyncIterator()

        #expect(try await iterator.next() == .listening)
        try await pool.query("SELECT pg_notify('jobs', \("job-1"))")
        try await pool.query("SELECT pg_notify('Mixed Case', 'm')")
        let first = try await iterator.next()
        guard case .notification(let note) = first else {
            Issue.record("expected a notification, got \(String(describing: first))")
            return
        }
        #expect(note.channel == "jobs")
        #expect(note.payload == "job-1")
        guard case .notification(let mixed) = try await iterator.next() else {
            Issue.record("expected the second notification")
            return
        }
        #expect(mixed.channel == "Mixed Case")

        // The server ends the listener's session: the listener reconnects and says so.
        let killed = try await pool.query("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()
            """)
        #expect(killed.count == 1)
        #expect(try await iterator.next() == .listening)
        try await pool.query("NOTIFY jobs, 'after-reconnect'")
        guard case .notification(let again) = try await iterator.next() else {
            Issue.record("expected a notification after reconnecting")
            return
        }
        #expect(again.payload == "after-reconnect")
    }

    @Test func aListenerThatCannotConnectFailsItsStream() async throws {
        let events = PostgresListener.events(connectionString: "host=/nonexistent port=1 user=x dbname=y", channels: ["a"])
        var iterator = events.makeAsyncIterator()
        let error = await #expect(throws: PostgresError.self) { _ = try await iterator.next() }
        #expect(error?.code == .connectionFailed)
    }
}
