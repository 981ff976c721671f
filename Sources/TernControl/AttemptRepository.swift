public import Foundation
public import TernModel
public import TernPostgres

/// One `attempts` row, as `tern show` and `tern logs` read it.
public struct AttemptRecord: Sendable, Hashable, Encodable {
    public var id: UUID
    public var jobID: UUID
    /// 1, 2, … per job.
    public var number: Int
    /// The idempotency key the executor knows the attempt by.
    public var key: String
    public var target: String
    public var state: AttemptState
    /// A `FailureReason` raw value once the attempt ended (nil when it succeeded).
    public var endReason: String?
    public var exitCode: Int?
    /// The executor's reference (an attempt directory, a Slurm job id).
    public var externalID: String?
    /// The checkpoint the attempt resumed from.
    public var resumeCheckpoint: String?
    /// The scheduler replica that placed it.
    public var scheduler: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    public var heartbeatAt: Date?
    /// The placement decision (every candidate with its score or why it was left out) as JSON text.
    public var placementJSON: String?

    enum CodingKeys: String, CodingKey {
        case id, number, key, target, state, scheduler, placement
        case jobID = "job_id"
        case endReason = "end_reason"
        case exitCode = "exit_code"
        case externalID = "external_id"
        case resumeCheckpoint = "resume_checkpoint"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case heartbeatAt = "heartbeat_at"
    }

    public func encode(to encoder: any Encoder) throws {
        // Every key, null included, so scripts can rely on the shape (docs/cli.md).
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(jobID, forKey: .jobID)
        try container.encode(number, forKey: .number)
        try container.encode(key, forKey: .key)
        try container.encode(target, forKey: .target)
        try container.encode(state, forKey: .state)
        try container.encode(endReason, forKey: .endReason)
        try container.encode(exitCode, forKey: .exitCode)
        try container.encode(externalID, forKey: .externalID)
        try container.encode(resumeCheckpoint, forKey: .resumeCheckpoint)
        try container.encode(scheduler, forKey: .scheduler)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(endedAt, forKey: .endedAt)
        try container.encode(heartbeatAt, forKey: .heartbeatAt)
        let placement = placementJSON.flatMap { try? JSONDecoder().decode(PlacementDecision.self, from: Data($0.utf8)) }
        try container.encode(placement, forKey: .placement)
    }
}

/// The `attempts` table as the agent and the CLI use it. The scheduler's own writes (placing,
/// recording reports, ending attempts) are fenced by the job's lease and live in `SchedulerStore`.
public struct AttemptRepository: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Records a heartbeat from the attempt's agent. Returns false when the attempt is no longer
    /// live (the scheduler ended it: lost, cancelled, or its job moved on), which tells the agent to
    /// stop the job so that two attempts never write checkpoints for one job at once.
    public func heartbeat(attemptID: UUID) async throws -> Bool {
        let rows = try await pool.query("""
            UPDATE attempts SET heartbeat_at = now()
            WHERE id = \(attemptID) AND state IN ('launching', 'queued', 'running')
            RETURNING 1
            """, prepared: true)
        return !rows.isEmpty
    }

    /// Every attempt of a job, in order.
    public func attempts(job: UUID) async throws -> [AttemptRecord] {
        let rows = try await pool.query("""
            SELECT \(unsafeSQL: Self.columns) FROM attempts WHERE job_id = \(job) ORDER BY number
            """)
        return try rows.map(Self.record(from:))
    }

    /// The job's latest attempt, if it has one.
    public func latest(job: UUID) async throws -> AttemptRecord? {
        let rows = try await pool.query("""
            SELECT \(unsafeSQL: Self.columns) FROM attempts WHERE job_id = \(job) ORDER BY number DESC LIMIT 1
            """)
        return try rows.first.map(Self.record(from:))
    }

    static let columns = """
        id, job_id, number, idempotency_key, target, state, end_reason, exit_code, external_id, resume_checkpoint, scheduler,
        created_at, started_at, ended_at, heartbeat_at, placement::text AS placement
        """

    static func record(from row: PostgresRow) throws -> AttemptRecord {
        let stateText = try row.decode(String.self, column: "state")
        guard let state = AttemptState(rawValue: stateText) else {
            throw JobRepositoryError("the database holds attempt state \"\(stateText)\", which this version of Tern does not know")
        }
        return AttemptRecord(
            id: try row.decode(UUID.self, column: "id"),
            jobID: try row.decode(UUID.self, column: "job_id"),
            number: try row.decode(Int.self, column: "number"),
            key: try row.decode(String.self, column: "idempotency_key"),
            target: try row.decode(String.self, column: "target"),
            state: state,
            endReason: try row.decode(String?.self, column: "end_reason"),
            exitCode: try row.decode(Int?.self, column: "exit_code"),
            externalID: try row.decode(String?.self, column: "external_id"),
            resumeCheckpoint: try row.decode(String?.self, column: "resume_checkpoint"),
            scheduler: try row.decode(String?.self, column: "scheduler"),
            createdAt: try row.decode(Date.self, column: "created_at"),
            startedAt: try row.decode(Date?.self, column: "started_at"),
            endedAt: try row.decode(Date?.self, column: "ended_at"),
            heartbeatAt: try row.decode(Date?.self, column: "heartbeat_at"),
            placementJSON: try row.decode(String?.self, column: "placement"))
    }
}
