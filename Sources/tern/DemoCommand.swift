import ArgumentParser
import TernPostgres

/// `tern demo`: everything on one machine. For now it brings up the embedded database and shows its
/// status; later it runs a training job end to end.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Try Tern on this machine: start the embedded PostgreSQL, apply migrations, and show the database status.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        let pool = try await database.migratedPool(migrations: migrations)
        let report = await DatabaseReport.collect(database: database, migrations: migrations, pool: pool)
        await pool.close()
        try report.print(json: false)
        if !report.healthy { throw ExitCode(1) }
    }
}
