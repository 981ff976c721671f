import Foundation
import TernPostgres
import TernTestSupport
import Testing

@Suite struct MigrationTests {
    /// A directory of migration files for one test.
    struct Files {
        let directory: String
        init(_ files: [String: String]) throws {
            directory = NSTemporaryDirectory() + "tern-migrations-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (name, text) in files { try write(name, text) }
        }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        func load() throws -> [Migration] { try Migration.load(directory: directory) }
    }

    static let basic = [
        "0001_init.sql": "CREATE TABLE a (id int8 PRIMARY KEY);",
        "0002_more.sql": "CREATE TABLE b (id int8 REFERENCES a (id));\nINSERT INTO a VALUES (1);",
        "README.md": "not a migration",
    ]

    @Test func appliesInOrderThenIsANoOp() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { Task { await pool.close() } }
        let files = try Files(Self.basic)
        let runner = MigrationRunner(pool: pool, migrations: try files.load())
        #expect(try await runner.status().map { $0.appliedAt == nil } == [true, true])
        #expect(try await runner.migrate().map(\.version) == [1, 2])
        #expect(try await runner.migrate().isEmpty)
        let statuses = try await runner.status()
        #expect(statuses.map(\.name) == ["init", "more"])
        #expect(statuses.allSatisfy { $0.appliedAt != nil && !$0.changed && !$0.unknown })
        #expect(try await pool.query("SELECT count(*) FROM a").scalar(Int.self) == 1)
        let checksum = try await pool.query("SELECT checksum FROM schema_migrations WHERE version = 1").scalar(String.self)
        #expect(checksum.count == 64)
    }

    @Test func concurrentRunnersApplyEachMigrationOnce() async throws {
        let url = try await TestDatabase.fresh()
        var files = Self.basic
        for version in 3...12 {
            files[String(format: "%04d_step.sql", version)] = "INSERT INTO a VALUES (\(version)); SELECT pg_sleep(0.02);"
        }
        let directory = try Files(files)
        let migrations = try directory.load()
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let pool = try PostgresPool(connectionString: url, maxConnections: 1)
                    defer { Task { await pool.close() } }
                    return try await MigrationRunner(pool: pool, migrations: migrations).migrate().map(\.version)
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(applied.sorted() == Array(1...12))
        let pool = try PostgresPool(connectionString: url, maxConnections: 1)
        defer { Task { await pool.close() } }
        #expect(try await pool.query("SELECT count(*) FROM schema_migrations").scalar(Int.self) == 12)
        #expect(try await pool.query("SELECT count(*) FROM a").scalar(Int.self) == 11)
    }

    @Test func anEditedMigrationIsRefusedByName() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { Task { await pool.close() } }
        let files = try Files(Self.basic)
        try await MigrationRunner(pool: pool, migrations: try files.load()).migrate()
        try files.write("0001_init.sql", "CREATE TABLE a (id int8 PRIMARY KEY, extra text);")
        try files.write("0003_next.sql", "CREATE TABLE c (x int);")
        let runner = MigrationRunner(pool: pool, migrations: try files.load())
        let error = await #expect(throws: PostgresError.self) { try await runner.migrate() }
        #expect(error?.code == .migration)
        #expect(error?.message.contains("0001_init.sql was changed after it was applied") == true)
        #expect(try await runner.status().first?.changed == true)
        // Nothing after the refusal ran.
        #expect(try await pool.query("SELECT to_regclass('c') IS NULL").scalar(Bool.self))
    }

    @Test func aMigrationTheFilesLackIsRefused() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { Task { await pool.close() } }
        let files = try Files(Self.basic)
        try await MigrationRunner(pool: pool, migrations: try files.load()).migrate()
        try FileManager.default.removeItem(atPath: files.directory + "/0002_more.sql")
        let runner = MigrationRunner(pool: pool, migrations: try files.load())
        let error = await #expect(throws: PostgresError.self) { try await runner.migrate() }
        #expect(error?.message.contains("migration 2 (more)") == true)
        #expect(try await runner.status().last?.unknown == true)
    }

    @Test func aFailingMigrationRollsBackAndNamesItsFile() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { Task { await pool.close() } }
        let files = try Files([
            "0001_init.sql": "CREATE TABLE a (id int8);",
            "0002_broken.sql": "CREATE TABLE half (x int);\nSELECT * FROM no_such_table;",
        ])
        let runner = MigrationRunner(pool: pool, migrations: try files.load())
        let error = await #expect(throws: PostgresError.self) { try await runner.migrate() }
        #expect(error?.message.contains("migration 0002_broken.sql failed") == true)
        #expect(error?.sqlState == "42P01")
        #expect(try await pool.query("SELECT to_regclass('half') IS NULL").scalar(Bool.self))
        #expect(try await pool.query("SELECT array_agg(version) FROM schema_migrations").scalar([Int].self) == [1])
    }

    @Test(arguments: [["init.sql": "x"], ["01-init.sql": "x"], ["0001_.sql": "x"], ["0001_a.sql": "x", "001_b.sql": "y"]])
    func malformedDirectoriesAreRefused(files: [String: String]) throws {
        let directory = try Files(files)
        let error = #expect(throws: PostgresError.self) { try directory.load() }
        #expect(error?.code == .migration)
        #expect(error?.message.contains(directory.directory) == true)
    }

    @Test func theProjectsOwnMigrationsApply() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { Task { await pool.close() } }
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("migrations").path
        let migrations = try Migration.load(directory: directory)
        #expect(!migrations.isEmpty)
        try await MigrationRunner(pool: pool, migrations: migrations).migrate()
        #expect(try await pool.query("SELECT count(*) FROM installation").scalar(Int.self) == 1)
    }
}
