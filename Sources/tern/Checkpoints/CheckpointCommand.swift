import ArgumentParser
import Foundation
import TernCheckpoints
import TernControl
import TernPostgres

/// `tern checkpoint`
struct CheckpointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Seal, verify, inspect and compare checkpoints.",
        discussion: """
            A checkpoint is a complete step directory sealed into a manifest (tern-manifest/v1) whose \
            SHA-256 is its id: the same bytes always give the same id. CKPT is a checkpoint id, a \
            unique prefix of at least 6 hex digits, or (where it says so) a manifest file. See \
            docs/checkpoints.md.
            """,
        subcommands: [
            CheckpointSealCommand.self, CheckpointVerifyCommand.self, CheckpointShowCommand.self, CheckpointDiffCommand.self,
            CheckpointCommitCommand.self, CheckpointPushCommand.self, CheckpointPullCommand.self, CheckpointStatusCommand.self,
        ])
}

/// `tern checkpoints JOB`
struct CheckpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoints",
        abstract: "List a job's checkpoints, newest step first.",
        discussion: """
            JOB is a job id, a unique prefix of one, or a unique prefix of a job name. Checkpoint ids \
            in the table are shortened to 12 hex digits; any unique prefix of 6 or more works as CKPT.
            """)

    @OptionGroup var reference: JobReferenceOptions
    @Flag(help: "Print the checkpoints as JSON.") var json = false

    func run() async throws {
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let jobs = JobRepository(pool: pool)
            let job = try await resolveJob(reference.job, repository: jobs)
            let checkpoints = try await CheckpointRepository(pool: pool).list(job: job.id)
            if json {
                try printJSON(checkpoints.map(JobCheckpointJSON.init), convertKeys: false)
                return
            }
            if checkpoints.isEmpty {
                print("no checkpoints recorded for job \(shortID(job.id)) \(job.name)")
                return
            }
            let now = try await jobs.databaseNow()
            // Later issues add one column per target holding a replica (its state and verification
            // level): the job × step × target matrix of DESIGN §1.
            let rows = checkpoints.map { checkpoint in
                [String(checkpoint.step), shortCheckpointID(checkpoint.checkpointID), String(checkpoint.files), byteText(checkpoint.bytes),
                 checkpoint.format, relativeTime(checkpoint.recordedAt, now: now)]
            }
            print(formatTable([["STEP", "CHECKPOINT", "FILES", "BYTES", "FORMAT", "RECORDED"]] + rows))
        }
    }
}

/// One checkpoint of a job in `tern checkpoints JOB --json`. Documented in docs/cli.md.
struct JobCheckpointJSON: Encodable {
    var record: JobCheckpointRecord

    init(_ record: JobCheckpointRecord) { self.record = record }

    enum CodingKeys: String, CodingKey {
        case id, step, files, bytes, format
        case jobID = "job_id"
        case attemptID = "attempt_id"
        case recordedAt = "recorded_at"
        case sealedAt = "sealed_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(record.checkpointID, forKey: .id)
        try container.encode(record.step, forKey: .step)
        try container.encode(record.files, forKey: .files)
        try container.encode(record.bytes, forKey: .bytes)
        try container.encode(record.format, forKey: .format)
        try container.encode(record.jobID.uuidString.lowercased(), forKey: .jobID)
        try container.encode(record.attemptID?.uuidString.lowercased(), forKey: .attemptID)
        try container.encode(record.recordedAt, forKey: .recordedAt)
        try container.encode(record.sealedAt, forKey: .sealedAt)
    }
}

/// A job that recorded a checkpoint, in `tern checkpoint show --json`.
struct CheckpointJobJSON: Encodable {
    var link: CheckpointJobLink

    enum CodingKeys: String, CodingKey {
        case step
        case jobID = "job_id"
        case jobName = "job_name"
        case attemptID = "attempt_id"
        case recordedAt = "recorded_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(link.jobID.uuidString.lowercased(), forKey: .jobID)
        try container.encode(link.jobName, forKey: .jobName)
        try container.encode(link.step, forKey: .step)
        try container.encode(link.attemptID?.uuidString.lowercased(), forKey: .attemptID)
        try container.encode(link.recordedAt, forKey: .recordedAt)
    }
}
