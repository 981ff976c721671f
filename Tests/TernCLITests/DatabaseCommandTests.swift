import Foundation
import TernPostgres
import TernTestSupport
import Testing

/// `tern db …` run as a separate program, the way users and scripts run it.
@Suite struct DatabaseCommandTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static var migrationCount: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: repository + "/migrations")) ?? []).filter { $0.hasSuffix(".sql") }.count
    }

    @Test func helpListsTheCommands() async throws {
        let root = try await TernBinary.run(["--help"])
        #expect(root.status == 0)
        #expect(root.stdout.contains("db"))
        #expect(root.stdout.contains("demo"))
        for command in ["start", "stop", "status", "url", "migrate"] {
            let help = try await TernBinary.run(["db", command, "--help"])
            #expect(help.status == 0, "tern db \(command) --help")
            #expect(help.stdout.contains("USAGE"))
        }
    }

    @Test func usageErrorsExitWithTwo() async throws {
        let outcome = try await TernBinary.run(["db", "status", "--no-such-flag"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("--no-such-flag"))
    }

    @Test func twoProcessesMigratingAtOnceApplyEachMigrationOnce() async throws {
        let url = try await TestDatabase.fresh()
        async let first = TernBinary.run(["db", "migrate", "--database-url", url])
        async let second = TernBinary.run(["db", "migrate", "--database-url", url])
        let outcomes = try await [first, second]
        #expect(outcomes.map(\.status) == [0, 0], "\(outcomes.map(\.stderr))")
        let pool = try PostgresPool(connectionString: url, maxConnections: 1)
        defer { Task { await pool.close() } }
        #expect(try await pool.query("SELECT count(*) FROM schema_migrations").scalar(Int.self) == Self.migrationCount)
        #expect(try await pool.query("SELECT count(*) FROM installation").scalar(Int.self) == 1)

        let status = try await TernBinary.run(["db", "status", "--database-url", url, "--json"])
        #expect(status.status == 0)
        let report = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(report?["mode"] as? String == "external")
        #expect(report?["reachable"] as? Bool == true)
        let migrations = report?["migrations"] as? [[String: Any]] ?? []
        #expect(migrations.count == Self.migrationCount)
        #expect(migrations.allSatisfy { $0["state"] as? String == "applied" })
    }

    @Test func anEditedMigrationIsRefusedNamingTheFile() async throws {
        let url = try await TestDatabase.fresh()
        let directory = TestDatabase.scratchDirectory("migrations")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "CREATE TABLE a (x int);".write(toFile: directory + "/0001_init.sql", atomically: true, encoding: .utf8)
        #expect(try await TernBinary.run(["db", "migrate", "--database-url", url, "--migrations", directory]).status == 0)
        try "CREATE TABLE a (x int, y int);".write(toFile: directory + "/0001_init.sql", atomically: true, encoding: .utf8)
        let refused = try await TernBinary.run(["db", "migrate", "--database-url", url, "--migrations", directory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("0001_init.sql was changed after it was applied"))
        let status = try await TernBinary.run(["db", "status", "--database-url", url, "--migrations", directory])
        #expect(status.status == 1)
        #expect(status.stdout.contains("changed"))
    }

    @Test func aBadServerIsReportedWithoutThePassword() async throws {
        let outcome = try await TernBinary.run(["db", "migrate", "--database-url", "postgres://tern:s3cretPW@127.0.0.1:1/x?connect_timeout=2"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("could not connect"))
        #expect(!outcome.stderr.contains("s3cretPW"))
        #expect(!outcome.stdout.contains("s3cretPW"))
    }

    @Test func embeddedClusterLifecycle() async throws {
        let home = TestDatabase.scratchDirectory("home")
        let environment = ["TERN_HOME": home, "TERN_MIGRATIONS_DIR": Self.repository + "/migrations"]
        defer {
            try? EmbeddedPostgres(root: home + "/postgres").stop()
            try? FileManager.default.removeItem(atPath: home)
        }
        let before = try await TernBinary.run(["db", "status", "--json"], environment: environment)
        #expect(before.status == 1)
        #expect(before.stdout.contains("\"state\" : \"not initialized\""))

        let started = try await TernBinary.run(["db", "start"], environment: environment)
        #expect(started.status == 0, "\(started.stderr)")
        #expect(started.stdout.contains("running"))
        let url = try await TernBinary.run(["db", "url"], environment: environment)
        #expect(url.stdout.hasPrefix("host=\(home)/postgres/run port="))
        let connection = try await PostgresConnection.connect(url.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(try await connection.query("SELECT count(*) FROM schema_migrations").scalar(Int.self) == Self.migrationCount)
        await connection.close()

        let stopped = try await TernBinary.run(["db", "stop"], environment: environment)
        #expect(stopped.status == 0)
        #expect(EmbeddedPostgres(root: home + "/postgres").status() == .stopped)
        let demo = try await TernBinary.run(["demo"], environment: environment)
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("PostgreSQL 15") || demo.stdout.contains("PostgreSQL 1"))
        // The whole story: preempted, failed over, migrated back, finished; every resume names its step.
        #expect(demo.stdout.contains("demo-trainer: succeeded"), "\(demo.stdout)")
        #expect(demo.stdout.contains("preempted (preempted)") && demo.stdout.contains("cancelled (migrated)"), "\(demo.stdout)")
        #expect(!demo.stdout.contains("step ?"), "\(demo.stdout)")
        #expect(demo.stdout.contains("Before the preemption"), "\(demo.stdout)")
    }
}
