import ArgumentParser
import Foundation
import TernCheckpoints
import TernControl
import TernModel
import TernPostgres

/// `tern jobs`
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List jobs, newest first.",
        discussion: "JOB ids in the table are shortened; any unique prefix of an id or a name works wherever a command takes JOB.")

    @Option(help: ArgumentHelp("Only jobs in this state: \(JobState.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "state"))
    var state: String?
    @Option(name: .customLong("label"), help: ArgumentHelp("Only jobs with this label (repeat to require several).", valueName: "key=value"))
    var labels: [String] = []
    @Option(help: "The most jobs to show.") var limit = 50
    @Flag(help: "Print the jobs as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if let state, JobState(rawValue: state) == nil {
            throw ValidationError("unknown state \"\(state)\"; expected one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for label in labels where label.split(separator: "=", maxSplits: 1).count != 2 {
            throw ValidationError("--label expects key=value, found \"\(label)\"")
        }
        if limit < 1 || limit > 10_000 { throw ValidationError("--limit must be from 1 to 10000") }
    }

    func run() async throws {
        try await database.withPool(migrations: migrations) { pool in try await execute(pool: pool) }
    }

    private func execute(pool: PostgresPool) async throws {
        let filter = Dictionary(labels.map { label in
            let parts = label.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts[1])
        }, uniquingKeysWith: { _, last in last })
        let repository = JobRepository(pool: pool)
        let jobs = try await repository.list(state: state.flatMap(JobState.init(rawValue:)), labels: filter, limit: limit)
        if json {
            try printJSON(jobs.map(JobSummaryJSON.init), convertKeys: false)
            return
        }
        if jobs.isEmpty {
            print("no jobs\(state.map { " in state \($0)" } ?? "")")
            return
        }
        let now = try await repository.databaseNow()
        let rows = jobs.map { job in
            [shortID(job.id), job.name, job.state.rawValue + (job.failureReason.map { " (\($0))" } ?? ""), job.target ?? "-",
             String(job.priority), relativeTime(job.createdAt, now: now), labelText(job.labels)]
        }
        print(formatTable([["ID", "NAME", "STATE", "TARGET", "PRIORITY", "SUBMITTED", "LABELS"]] + rows))
    }
}

/// `tern show JOB`
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one job: its state, spec, and recent events.",
        discussion: "JOB is a job id, a unique prefix of one, or a unique prefix of a job name.")

    @OptionGroup var reference: JobReferenceOptions
    @Flag(help: "Print the job as JSON (with its normalised spec and events).") var json = false

    func run() async throws {
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let repository = JobRepository(pool: pool)
            let record = try await resolveJob(reference.job, repository: repository)
            let events = try await repository.events(jobID: record.id)
            let attempts = try await AttemptRepository(pool: pool).attempts(job: record.id)
            let checkpoints = try await CheckpointRepository(pool: pool).list(job: record.id)
            let replicas = try await ReplicaRepository(pool: pool).replicas(job: record.id)
            try await show(record, events: events, attempts: attempts, checkpoints: checkpoints, replicas: replicas.map(\.replica),
                           repository: repository)
        }
    }

    private func show(_ record: JobRecord, events: [JobEventRecord], attempts: [AttemptRecord], checkpoints: [JobCheckpointRecord],
                      replicas: [ReplicaRecord], repository: JobRepository) async throws {
        let spec = try? CanonicalJSON.decode(JobSpec.self, from: record.specJSON)
        let committedOn = Dictionary(grouping: replicas.filter { $0.state == .committed }, by: \.checkpointID)
            .mapValues { $0.map { $0.target ?? $0.store }.sorted() }
        if json {
            let specValue = (try? CanonicalJSON.decode(JSONValue.self, from: record.specJSON)) ?? .null
            try printJSON(ShowJSON(job: JobSummaryJSON(record), spec: specValue, events: events.map(JobEventJSON.init), attempts: attempts,
                                   checkpoints: checkpoints.map { JobShowCheckpointJSON(record: $0, committedOn: committedOn[$0.checkpointID] ?? []) }),
                          convertKeys: false)
            return
        }
        let now = try await repository.databaseNow()
        var lines: [[String]] = [
            ["id:", record.id.uuidString.lowercased()],
            ["name:", record.name],
            ["state:", record.state.rawValue + (record.failureReason.map { " (\($0))" } ?? "")],
            ["target:", record.target ?? "-"],
            ["priority:", String(record.priority)],
            ["labels:", labelText(record.labels)],
            ["submitted:", "\(relativeTime(record.createdAt, now: now)) (\(record.createdAt.formatted(.iso8601)))"],
            ["updated:", relativeTime(record.updatedAt, now: now)],
            ["restarts:", String(record.restarts)],
            ["spec hash:", record.specHash],
        ]
        if let finished = record.finishedAt { lines.append(["finished:", relativeTime(finished, now: now)]) }
        if let spec {
            lines.append(["nodes:", String(spec.nodes)])
            lines.append(["accelerators:", spec.resources.accelerators.map { "\($0.mode) of \($0.requests.map(\.description).joined(separator: ", "))" } ?? "none"])
            lines.append(["placement:", spec.placement.targets.isEmpty ? "any registered target" : "\(spec.placement.strategy.rawValue): \(spec.placement.targets.joined(separator: ", "))"])
            lines.append(["checkpoints:", "\(spec.checkpoint.dir) (\(spec.checkpoint.format.rawValue)), keep \(spec.checkpoint.keep)" + (spec.checkpoint.replicateTo.isEmpty ? "" : ", replicated to \(spec.checkpoint.replicateTo.joined(separator: ", "))")])
            lines.append(["run:", spec.run.split(separator: "\n").first.map(String.init) ?? ""])
        }
        print(formatTable(lines))
        if !attempts.isEmpty {
            print("\nattempts:")
            let rows = attempts.map { attempt in
                [String(attempt.number), attempt.target, attempt.state.rawValue, attempt.endReason ?? "-", attempt.exitCode.map(String.init) ?? "-",
                 attempt.startedAt.map { relativeTime($0, now: now) } ?? "-", attempt.endedAt.map { relativeTime($0, now: now) } ?? "-",
                 attempt.resumeCheckpoint.map(shortCheckpointID) ?? "fresh start"]
            }
            print(formatTable([["#", "TARGET", "STATE", "REASON", "EXIT", "STARTED", "ENDED", "RESUMED FROM"]] + rows))
        }
        if let latest = attempts.last, let text = latest.placementJSON,
           let decision = try? JSONDecoder().decode(PlacementDecision.self, from: Data(text.utf8)) {
            print("\nplacement of attempt \(latest.number): \(decision.why)")
            print(PlacementTable.render(decision))
        }
        if !checkpoints.isEmpty {
            print("\ncheckpoints (newest first; all with `tern checkpoints \(shortID(record.id))`):")
            let rows = checkpoints.prefix(5).map { checkpoint in
                [String(checkpoint.step), shortCheckpointID(checkpoint.checkpointID), byteText(checkpoint.bytes),
                 (committedOn[checkpoint.checkpointID] ?? []).joined(separator: ", ").nonEmpty ?? "not committed anywhere",
                 relativeTime(checkpoint.recordedAt, now: now)]
            }
            print(formatTable([["STEP", "CHECKPOINT", "BYTES", "COMMITTED ON", "RECORDED"]] + rows))
        }
        print("\nevents (newest last; all with `tern events \(shortID(record.id))`):")
        print(EventsCommand.table(Array(events.suffix(10)), now: now))
    }
}

struct ShowJSON: Encodable {
    var job: JobSummaryJSON
    var spec: JSONValue
    var events: [JobEventJSON]
    var attempts: [AttemptRecord]
    var checkpoints: [JobShowCheckpointJSON]
}

/// A checkpoint in `tern show --json`: `tern checkpoints --json`'s fields and where it is committed.
struct JobShowCheckpointJSON: Encodable {
    var record: JobCheckpointRecord
    var committedOn: [String]

    enum CodingKeys: String, CodingKey { case committedOn = "committed_on" }

    func encode(to encoder: any Encoder) throws {
        try JobCheckpointJSON(record).encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(committedOn, forKey: .committedOn)
    }
}

extension String {
    /// nil for the empty string, for `??` defaults.
    var nonEmpty: String? { isEmpty ? nil : self }
}

/// `tern events JOB`
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Show every state change of a job, oldest first, with its reason.",
        discussion: "JOB is a job id, a unique prefix of one, or a unique prefix of a job name.")

    @OptionGroup var reference: JobReferenceOptions
    @Flag(help: "Print the events as JSON.") var json = false

    func run() async throws {
        try await reference.withJob { repository, _, events in try await show(events, repository: repository) }
    }

    private func show(_ events: [JobEventRecord], repository: JobRepository) async throws {
        if json {
            try printJSON(events.map(JobEventJSON.init), convertKeys: false)
            return
        }
        print(Self.table(events, now: try await repository.databaseNow()))
    }

    static func table(_ events: [JobEventRecord], now: Date) -> String {
        if events.isEmpty { return "no events" }
        let rows = events.map { event in
            let change = event.fromState.map { "\($0) → \(event.toState ?? "?")" } ?? (event.toState ?? "-")
            return [event.at.formatted(.iso8601), relativeTime(event.at, now: now), event.kind, change, event.reason ?? "-", event.message ?? ""]
        }
        return formatTable([["AT", "AGO", "EVENT", "STATE", "REASON", "MESSAGE"]] + rows)
    }
}

/// `tern cancel JOB…`
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel jobs.",
        discussion: """
            A pending job is cancelled at once. A job with an attempt that may be running moves to \
            cancelling; the scheduler stops the attempt and then marks the job cancelled. A job that \
            already ended is left as it is (and the exit code is 1). JOB is an id, a unique id prefix \
            or a unique name prefix.
            """)

    @Argument(help: ArgumentHelp("The jobs.", valueName: "job")) var jobs: [String]
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if jobs.isEmpty { throw ValidationError("give at least one JOB") }
    }

    func run() async throws {
        try await database.withPool(migrations: migrations) { pool in try await execute(pool: pool) }
    }

    private func execute(pool: PostgresPool) async throws {
        let repository = JobRepository(pool: pool)
        var outcomes: [CancelJSON] = []
        var failed = false
        for reference in jobs {
            do {
                let record = try await repository.resolve(reference)
                let outcome = try await repository.cancel(jobID: record.id)
                outcomes.append(CancelJSON(job: reference, id: record.id.uuidString.lowercased(), name: record.name,
                                           from: outcome.from.rawValue, to: outcome.to.rawValue, changed: outcome.changed, message: outcome.message))
                if !outcome.changed { failed = true }
            } catch let error as JobLookupError {
                outcomes.append(CancelJSON(job: reference, id: nil, name: nil, from: nil, to: nil, changed: false, message: error.description))
                failed = true
            }
        }
        if json {
            try printJSON(outcomes, convertKeys: false)
        } else {
            for outcome in outcomes {
                if let id = outcome.id, let name = outcome.name {
                    let label = "\(String(id.prefix(8))) \(name)"
                    print(outcome.changed ? "\(label): \(outcome.from ?? "?") → \(outcome.to ?? "?")" : "\(label): not changed: \(outcome.message)")
                } else {
                    print("\(outcome.job): \(outcome.message)")
                }
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct CancelJSON: Encodable {
    var job: String
    var id: String?
    var name: String?
    var from: String?
    var to: String?
    var changed: Bool
    var message: String

    // Written by hand so that absent values are `null` rather than left out: scripts can rely on
    // every key being there (docs/cli.md).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(job, forKey: .job)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(changed, forKey: .changed)
        try container.encode(message, forKey: .message)
    }

    enum CodingKeys: String, CodingKey { case job, id, name, from, to, changed, message }
}

/// The JOB argument of commands about one job, and the database to find it in.
struct JobReferenceOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("A job id, a unique prefix of one, or a unique prefix of a job name.", valueName: "job"))
    var job: String
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    /// Runs `body` with the job and its events, oldest first.
    func withJob<Result>(_ body: (JobRepository, JobRecord, [JobEventRecord]) async throws -> Result) async throws -> Result {
        try await database.withPool(migrations: migrations) { pool in
            let repository = JobRepository(pool: pool)
            let record = try await resolveJob(job, repository: repository)
            return try await body(repository, record, try await repository.events(jobID: record.id))
        }
    }
}

/// Finds a job by id, id prefix or name prefix; an unknown or ambiguous reference exits 1 with the candidates.
func resolveJob(_ reference: String, repository: JobRepository) async throws -> JobRecord {
    do {
        return try await repository.resolve(reference)
    } catch let error as JobLookupError {
        throw CommandFailure(message: error.description)
    }
}
