import ArgumentParser
import Foundation
import TernControl
import TernModel
import TernPostgres

/// Where the database is: an external server, or the embedded cluster under $TERN_HOME.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: ArgumentHelp(
        "PostgreSQL connection string (postgres://… or key=value). Default: $TERN_DATABASE_URL, else the embedded cluster.",
        valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("home"), help: ArgumentHelp("Tern's state directory. Default: $TERN_HOME, else ./.tern", valueName: "dir"))
    var home: String?

    /// The external connection string, if one was given by flag or environment.
    var externalConnectionString: String? {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let fromEnvironment = ProcessInfo.processInfo.environment["TERN_DATABASE_URL"], !fromEnvironment.isEmpty { return fromEnvironment }
        return nil
    }

    var ternHome: TernHome {
        if let home { return TernHome(path: home) }
        return TernHome()
    }

    var embedded: EmbeddedPostgres { EmbeddedPostgres(root: ternHome.postgresDirectory) }

    /// A connection string to use, starting the embedded cluster when no external one is configured.
    func connectionString() async throws -> String {
        if let external = externalConnectionString { return external }
        return try await embedded.start()
    }

    /// A pool on the database with every migration applied, ready for commands that need the schema.
    ///
    /// With the embedded cluster, the default `local` target (this machine, a file store under
    /// $TERN_HOME) is registered too, so a spec runs here with no targets file at all.
    func migratedPool(migrations: MigrationsOptions, maxConnections: Int = 4) async throws -> PostgresPool {
        let pool = try PostgresPool(connectionString: try await connectionString(), maxConnections: maxConnections)
        try await MigrationRunner(pool: pool, migrations: try migrations.load()).migrate()
        if externalConnectionString == nil {
            try await TargetRepository(pool: pool).ensure(TargetRepository.defaultLocal(home: ternHome.path))
        }
        return pool
    }
}

extension DatabaseOptions {
    /// Runs `body` with a migrated pool and closes the pool afterwards, whether `body` throws or not.
    func withPool<Result>(migrations: MigrationsOptions, maxConnections: Int = 2,
                          _ body: (PostgresPool) async throws -> Result) async throws -> Result {
        let pool = try await migratedPool(migrations: migrations, maxConnections: maxConnections)
        do {
            let result = try await body(pool)
            await pool.close()
            return result
        } catch {
            await pool.close()
            throw error
        }
    }
}

/// Where the migration files are.
struct MigrationsOptions: ParsableArguments {
    @Option(name: .customLong("migrations"), help: ArgumentHelp(
        "Directory of numbered .sql migrations. Default: $TERN_MIGRATIONS_DIR, else the one installed beside tern.",
        valueName: "dir"))
    var directory: String?

    func load() throws -> [Migration] {
        try Migration.load(directory: try MigrationsDirectory.locate(explicit: directory))
    }
}

/// Finds the migrations directory: given, from the environment, installed beside the program
/// (`../share/tern/migrations`), or in the source tree the program was built in.
enum MigrationsDirectory {
    static func locate(explicit: String?) throws -> String {
        let fileManager = FileManager.default
        if let explicit { return explicit }
        if let fromEnvironment = ProcessInfo.processInfo.environment["TERN_MIGRATIONS_DIR"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        let executable = (try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = (executable as NSString).deletingLastPathComponent
        var candidates = [directory + "/../share/tern/migrations"]
        // A development build lives in <repo>/.build/<triple>/debug: walk up to the repository.
        while directory != "/" && !directory.isEmpty {
            candidates.append(directory + "/migrations")
            directory = (directory as NSString).deletingLastPathComponent
        }
        candidates.append(fileManager.currentDirectoryPath + "/migrations")
        for candidate in candidates where fileManager.fileExists(atPath: candidate + "/0001_init.sql") {
            return (candidate as NSString).standardizingPath
        }
        throw CommandFailure(message: "cannot find Tern's migrations directory (looked beside \(executable) and in the current directory); set TERN_MIGRATIONS_DIR or pass --migrations DIR")
    }
}
