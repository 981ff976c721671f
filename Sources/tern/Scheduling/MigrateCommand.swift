import ArgumentParser
import Foundation
import TernControl
import TernModel

/// `tern migrate JOB --to TARGET`
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move a job to another target, resuming from its newest checkpoint there.",
        discussion: """
            The scheduler holding the job asks its running attempt for a checkpoint (the agent sends \
            the job SIGUSR1) and waits for it to be sealed and committed, at most --graceful \
            (default: the scheduler's --grace); --now stops it at once without a new checkpoint. \
            It then makes the newest committed checkpoint consistent on TARGET (only the files TARGET's \
            store lacks move) and launches the job there with TERN_RESUME_FROM. Every step is an \
            event (`tern events JOB`). A job waiting for a placement just goes to TARGET next. \
            See docs/placement.md.
            """)

    @OptionGroup var reference: JobReferenceOptions
    @Option(help: ArgumentHelp("The target to move to.", valueName: "target")) var to: String
    @Option(help: ArgumentHelp("How long the running attempt gets to write a checkpoint and stop.", valueName: "duration"))
    var graceful: DurationArgument?
    @Flag(help: "Stop the running attempt at once: resume from the newest checkpoint already committed.") var now = false
    @Flag(help: "Print the outcome as JSON.") var json = false

    func validate() throws {
        if now && graceful != nil { throw ValidationError("give --graceful DURATION or --now, not both") }
    }

    func run() async throws {
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let repository = JobRepository(pool: pool)
            let job = try await resolveJob(reference.job, repository: repository)
            let targets = try await TargetRepository(pool: pool).definitions()
            guard let target = targets.first(where: { $0.name == to }) else {
                let known = targets.map(\.name).sorted().joined(separator: ", ")
                throw CommandFailure(message: "no target named \"\(to)\"; known targets: \(known.isEmpty ? "none (see `tern targets apply`)" : known)", exitCode: 2)
            }
            if let spec = try? CanonicalJSON.decode(JobSpec.self, from: job.specJSON), let reason = target.fits(spec) {
                throw CommandFailure(message: "\(to) cannot run job \(job.name): \(reason)", exitCode: 2)
            }
            let grace: Duration? = now ? .zero : graceful?.duration
            let outcome = try await repository.migrate(jobID: job.id, to: to, grace: grace)
            if json {
                try printJSON(CancelJSON(job: reference.job, id: job.id.uuidString.lowercased(), name: job.name, from: outcome.from.rawValue,
                                         to: outcome.to.rawValue, changed: outcome.changed, message: outcome.message), convertKeys: false)
            } else if outcome.changed {
                print("\(shortID(job.id)) \(job.name): \(outcome.message); moving to \(to) (follow with `tern events \(shortID(job.id))`)")
            } else {
                print("\(shortID(job.id)) \(job.name): not moved: \(outcome.message)")
            }
            if !outcome.changed { throw ExitCode(1) }
        }
    }
}
