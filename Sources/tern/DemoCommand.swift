import ArgumentParser
import Foundation
import TernControl
import TernModel
import TernPostgres

/// `tern demo`: everything on one machine.
///
/// So far it brings up the embedded database, registers the two local demo targets and submits the
/// demo job, then shows the job and its events. Running it (executors, checkpoints, the move from
/// one target to the other) arrives with the scheduler.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Try Tern on this machine: embedded PostgreSQL, two local targets, and the demo job.",
        discussion: """
            Starts the embedded PostgreSQL (under $TERN_HOME, default ./.tern), applies migrations, \
            registers the targets in targets/demo.yaml and submits jobspecs/demo.yaml. Running it again \
            shows the same job: the submission is idempotent.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        try await database.withPool(migrations: migrations) { pool in
            let report = await DatabaseReport.collect(database: database, migrations: migrations, pool: pool)
            try report.print(json: false)
            if !report.healthy { throw ExitCode(1) }

            let root = (try MigrationsDirectory.locate(explicit: migrations.directory) as NSString).deletingLastPathComponent
            let targetsFile = root + "/targets/demo.yaml", specFile = root + "/jobspecs/demo.yaml"
            let targets = try TargetsFileParser.parse(fileAt: targetsFile).mapError { SpecProblems(diagnostics: $0.diagnostics) }.get()
            let summary = try await TargetRepository(pool: pool).apply(targets)
            print("\ntargets from \(targetsFile): created \(summary.created.count), updated \(summary.updated.count), unchanged \(summary.unchanged.count)")

            let spec = try JobSpecParser.parse(fileAt: specFile).mapError { SpecProblems(diagnostics: $0.diagnostics) }.get().spec
            let repository = JobRepository(pool: pool)
            let job = try await repository.submit([
                NewJob(spec: spec, submitKey: "demo-\(spec.specHash)"),
            ])[0]
            print("submitted \(specFile) as job \(job.id.uuidString.lowercased()) (\(job.name), \(job.state.rawValue))\n")
            let now = try await repository.databaseNow()
            print(EventsCommand.table(try await repository.events(jobID: job.id), now: now))
            print("""

                Next: `tern jobs`, `tern show \(shortID(job.id))`, `tern events \(shortID(job.id))`. Running the job \
                (executors, checkpoints, moving it from local-a to local-b) arrives with the scheduler.
                """)
        }
    }
}
