import ArgumentParser
import TernPostgres

/// `tern db`: the database Tern keeps its state in.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Manage Tern's PostgreSQL database: the embedded cluster and the schema.",
        subcommands: [
            DatabaseStartCommand.self, DatabaseStopCommand.self, DatabaseStatusCommand.self,
            DatabaseURLCommand.self, DatabaseMigrateCommand.self,
        ]
    )
}

/// `tern db start`
struct DatabaseStartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start the embedded PostgreSQL cluster (making it on first use) and apply migrations.",
        discussion: "Reuses the cluster when it already runs. With --database-url, only applies migrations there.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions
    @Flag(help: "Print the status as JSON.") var json = false

    func run() async throws {
        let pool = try await database.migratedPool(migrations: migrations)
        let report = await DatabaseReport.collect(database: database, migrations: migrations, pool: pool)
        await pool.close()
        try report.print(json: json)
    }
}

/// `tern db stop`
struct DatabaseStopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the embedded PostgreSQL cluster (fast shutdown, by its PID).")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let embedded = database.embedded
        guard case .running(let pid, _, _) = embedded.status() else {
            print("the embedded cluster under \(embedded.root) is not running")
            return
        }
        try embedded.stop()
        print("stopped the embedded cluster (pid \(pid)) under \(embedded.root)")
    }
}

/// `tern db status`
struct DatabaseStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show where the database is, whether it runs, and which migrations are applied.",
        discussion: "Does not start the embedded cluster. Exits 1 when the database cannot be reached or its schema is inconsistent.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions
    @Flag(help: "Print the status as JSON.") var json = false

    func run() async throws {
        var pool: PostgresPoolHandle?
        if database.externalConnectionString != nil || database.embedded.connectionString() != nil {
            pool = try? PostgresPoolHandle(connectionString: try await database.connectionString())
        }
        let report = await DatabaseReport.collect(database: database, migrations: migrations, pool: pool?.pool)
        await pool?.pool.close()
        try report.print(json: json)
        if !report.healthy { throw ExitCode(1) }
    }
}

/// `tern db url`
struct DatabaseURLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "url",
        abstract: "Print the embedded cluster's connection string (starting it if needed), for psql and scripts.",
        discussion: "Example: psql \"$(tern db url)\". With an external database it prints only the server and database, never a password.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        if let external = database.externalConnectionString {
            print(PostgresConnectionStringSummary.summary(external))
            return
        }
        print(try await database.embedded.start())
    }
}

/// `tern db migrate`
struct DatabaseMigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations, each in its own transaction.",
        discussion: "Safe to run from several processes at once. Refuses to run if an applied migration's file was edited.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions
    @Flag(help: "Print what was applied as JSON.") var json = false

    struct Output: Encodable {
        var applied: [AppliedMigration]
        struct AppliedMigration: Encodable {
            var version: Int
            var name: String
        }
    }

    func run() async throws {
        let files = try migrations.load()
        let pool = try PostgresPool(connectionString: try await database.connectionString(), maxConnections: 2)
        do {
            let applied = try await MigrationRunner(pool: pool, migrations: files).migrate()
            await pool.close()
            if json {
                try printJSON(Output(applied: applied.map { .init(version: $0.version, name: $0.name) }))
            } else if applied.isEmpty {
                print("the schema is up to date (\(files.count) migration(s) applied)")
            } else {
                for migration in applied { print("applied \(migration.fileName)") }
            }
        } catch {
            await pool.close()
            throw error
        }
    }
}
