import Foundation
import Glibc
public import TernPostgres

/// The PostgreSQL server the tests run against: a real one, never a mock.
///
/// By default one throwaway cluster per test process, made with Tern's own `EmbeddedPostgres` under
/// `/tmp/tern-test-<pid>` (fsync off), and stopped by its PID when the process exits. With
/// `TERN_TEST_DATABASE_URL` (key=value form) the tests use that server instead. Each test asks for a
/// fresh database, so tests run in parallel without seeing each other's rows.
///
/// There is no skip: if PostgreSQL cannot be started, every database test fails with the reason.
public enum TestDatabase {
    /// A connection string to a new, empty database.
    public static func fresh() async throws -> String {
        let admin = try await cluster.adminConnectionString()
        let name = "t_\(getpid())_\(counter.next())"
        let connection = try await PostgresConnection.connect(admin)
        try await connection.query("CREATE DATABASE \(identifier: name)")
        await connection.close()
        return "\(admin) dbname=\(name)"
    }

    /// A pool on a new, empty database.
    public static func freshPool(maxConnections: Int = 4) async throws -> PostgresPool {
        try PostgresPool(connectionString: try await fresh(), maxConnections: maxConnections)
    }

    /// The connection string of the server's `postgres` database (for tests that manage databases).
    public static func adminConnectionString() async throws -> String {
        try await cluster.adminConnectionString()
    }

    /// A fresh directory for a test's own cluster or state, named so a crashed run's leftovers are
    /// found and stopped by the next run.
    public static func scratchDirectory(_ label: String) -> String {
        "/tmp/tern-test-\(getpid())-\(label)-\(counter.next())"
    }

    static let cluster = SharedCluster()
    static let counter = Counter()
}

/// Starts the cluster once, whoever asks first.
actor SharedCluster {
    // A task, not a stored result: the actor is re-entered while the first caller awaits the start,
    // and every caller must wait on that same start.
    private var starting: Task<String, any Error>?

    func adminConnectionString() async throws -> String {
        if let starting { return try await starting.value }
        let task = Task { try await Self.start() }
        starting = task
        return try await task.value
    }

    private static func start() async throws -> String {
        if let external = ProcessInfo.processInfo.environment["TERN_TEST_DATABASE_URL"], !external.isEmpty {
            if external.hasPrefix("postgres://") || external.hasPrefix("postgresql://") {
                throw PostgresError(code: .invalidConnectionString, message: "TERN_TEST_DATABASE_URL must be in key=value form (host=... port=... user=...), so the tests can add dbname=")
            }
            return external
        }
        TestClusterCleanup.stopLeftovers()
        let root = "/tmp/tern-test-\(getpid())"
        TestClusterCleanup.register(root: root)
        let cluster = EmbeddedPostgres(root: root, settings: ["fsync": "off", "synchronous_commit": "off", "max_connections": "200"])
        let url = try await cluster.start(database: "postgres")
        return url.replacingOccurrences(of: " dbname=postgres", with: "")
    }
}

/// Stops the test cluster by its PID when the test process exits, and clusters that crashed test
/// runs left behind.
enum TestClusterCleanup {
    nonisolated(unsafe) static var root: String?

    static func register(root: String) {
        self.root = root
        atexit {
            guard let root = TestClusterCleanup.root else { return }
            try? EmbeddedPostgres(root: root).stop()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    /// A `/tmp/tern-test-<pid>[-anything]` whose test process is gone holds an orphaned cluster: stop it.
    static func stopLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        // `-servers` directories hold PID files of other servers; TestServerRegistry stops those.
        for name in names where name.hasPrefix("tern-test-") && !name.hasSuffix("-servers") {
            let pidText = name.dropFirst("tern-test-".count).prefix { $0 != "-" }
            guard let pid = Int32(pidText), pid != getpid() else { continue }
            if kill(pid, 0) == 0 { continue }
            let root = "/tmp/" + name
            try? EmbeddedPostgres(root: root).stop()
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}

/// A thread-safe counter for unique names.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
