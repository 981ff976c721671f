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
        if let explicit { return explicit }
        if let found = InstalledFiles.locate("migrations", marker: "0001_init.sql", environment: "TERN_MIGRATIONS_DIR") { return found }
        throw CommandFailure(message: "cannot find Tern's migrations directory (looked beside \(InstalledFiles.executable) and in the current directory); set TERN_MIGRATIONS_DIR or pass --migrations DIR")
    }
}

/// The price catalogue (catalog/gpu-offers.csv): $TERN_CATALOG, beside the program, or in the
/// source tree. Nil when there is none (placement then prices only targets with hourly_cost).
enum CatalogFile {
    static func locate() -> String? {
        if let file = ProcessInfo.processInfo.environment["TERN_CATALOG"], !file.isEmpty { return file }
        return InstalledFiles.locate("catalog", marker: "gpu-offers.csv", environment: nil).map { $0 + "/gpu-offers.csv" }
    }
}

/// Files Tern ships beside its program: `<prefix>/share/tern/NAME` when installed, `<repo>/NAME`
/// in a development build (which lives in <repo>/.build/<triple>/debug), or ./NAME.
enum InstalledFiles {
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func locate(_ name: String, marker: String, environment variable: String?) -> String? {
        let fileManager = FileManager.default
        if let variable, let fromEnvironment = ProcessInfo.processInfo.environment[variable], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        var directory = (executable as NSString).deletingLastPathComponent
        var candidates = [directory + "/../share/tern/" + name]
        while directory != "/" && !directory.isEmpty {
            candidates.append(directory + "/" + name)
            directory = (directory as NSString).deletingLastPathComponent
        }
        candidates.append(fileManager.currentDirectoryPath + "/" + name)
        return candidates.first { fileManager.fileExists(atPath: $0 + "/" + marker) }.map { ($0 as NSString).standardizingPath }
    }
}
