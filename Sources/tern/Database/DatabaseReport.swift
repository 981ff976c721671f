import Foundation
import TernPostgres

/// What `tern db status` reports; the JSON form is documented in docs/database.md.
struct DatabaseReport: Encodable {
    /// `embedded` or `external`.
    var mode: String
    /// The server and database, without secrets.
    var target: String
    var cluster: Cluster?
    var reachable: Bool
    var serverVersion: String?
    var installationId: String?
    var migrations: [MigrationState]
    var error: String?

    struct Cluster: Encodable {
        var state: String
        var pid: Int32?
        var port: Int?
        var socketDirectory: String?
        var dataDirectory: String
        var logFile: String
    }

    struct MigrationState: Encodable {
        var version: Int
        var name: String
        /// `applied`, `pending`, `changed` (edited after it was applied) or `unknown` (not among the files).
        var state: String
        var appliedAt: Date?
    }

    /// True when the database answers and every migration file is applied unchanged.
    var healthy: Bool {
        reachable && error == nil && migrations.allSatisfy { $0.state == "applied" }
    }

    static func collect(database: DatabaseOptions, migrations: MigrationsOptions, pool: PostgresPool?) async -> DatabaseReport {
        var report: DatabaseReport
        if let external = database.externalConnectionString {
            report = DatabaseReport(mode: "external", target: PostgresConnectionStringSummary.summary(external), reachable: false, migrations: [])
        } else {
            let embedded = database.embedded
            var cluster = Cluster(state: "not initialized", dataDirectory: embedded.dataDirectory, logFile: embedded.logFile)
            switch embedded.status() {
            case .notInitialized: break
            case .stopped: cluster.state = "stopped"
            case .running(let pid, let port, let socket):
                cluster.state = "running"
                cluster.pid = pid
                cluster.port = port
                cluster.socketDirectory = socket
            }
            let target = embedded.connectionString().map(PostgresConnectionStringSummary.summary) ?? "(embedded, not running)"
            report = DatabaseReport(mode: "embedded", target: target, cluster: cluster, reachable: false, migrations: [])
        }
        guard let pool else { return report }
        do {
            let version = try await pool.query("SHOW server_version").scalar(String.self)
            report.reachable = true
            report.serverVersion = version
            let runner = MigrationRunner(pool: pool, migrations: try migrations.load())
            report.migrations = try await runner.status().map { status in
                let state = status.unknown ? "unknown" : status.changed ? "changed" : status.appliedAt == nil ? "pending" : "applied"
                return MigrationState(version: status.version, name: status.name, state: state, appliedAt: status.appliedAt)
            }
            if report.migrations.contains(where: { $0.version == 1 && $0.state == "applied" }) {
                report.installationId = try await pool.query("SELECT id::text FROM installation").first?.decode(String.self, at: 0)
            }
        } catch {
            report.error = String(describing: error)
        }
        return report
    }

    func print(json: Bool) throws {
        if json {
            try printJSON(self)
            return
        }
        var rows: [[String]] = [["database", "\(mode): \(target)"]]
        if let cluster {
            var line = cluster.state
            if let pid = cluster.pid { line += ", pid \(pid)" }
            rows.append(["cluster", line])
            rows.append(["data", cluster.dataDirectory])
            rows.append(["log", cluster.logFile])
        }
        rows.append(["server", serverVersion.map { "PostgreSQL \($0)" } ?? "unreachable"])
        if let installationId { rows.append(["installation", installationId]) }
        if reachable {
            let applied = migrations.filter { $0.state == "applied" }.count
            rows.append(["migrations", "\(applied) applied, \(migrations.count - applied) not applied"])
        }
        Swift.print(formatTable(rows))
        for migration in migrations {
            let when = migration.appliedAt.map { " " + ISO8601DateFormatter().string(from: $0) } ?? ""
            Swift.print("  \(String(format: "%04d", migration.version)) \(migration.name)  \(migration.state)\(when)")
        }
        if let error { Swift.print("error: \(error)") }
    }
}

/// Shortens the name for use in the CLI.
typealias PostgresConnectionStringSummary = PostgresConnectionString

/// A pool made only if the connection string parses (status must report, not throw).
struct PostgresPoolHandle {
    let pool: PostgresPool
    init(connectionString: String) throws {
        pool = try PostgresPool(connectionString: connectionString, maxConnections: 1)
    }
}
