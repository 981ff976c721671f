import Foundation
import TernExecutors
import TernModel
import TernPostgres

/// A job a replica holds the lease of, with its live attempt: what one tick decides from.
struct OwnedJob: Sendable {
    var id: UUID
    /// The lease epoch of our claim: every write carries it (fencing).
    var epoch: Int64
    var name: String
    var state: JobState
    var spec: JobSpec
    var workdirBase: String?
    var restarts: Int
    var preemptions: Int
    /// False while a backoff holds the next placement back.
    var placementDue: Bool
    /// Seconds since the first attempt started running, when one has.
    var runningSeconds: Double?
    /// The highest attempt number so far (0 before the first).
    var attempts: Int
    /// The target of the latest attempt and how it ended, for failover.
    var lastTarget: String?
    var lastAttemptState: AttemptState?
    /// Where `tern migrate` asked the job to go.
    var migrateTo: String?
    /// The grace `tern migrate --graceful/--now` asked for, in seconds.
    var stopGrace: Double?
    var live: LiveAttempt?
}

/// The attempt of an owned job that is launching, queued or running.
struct LiveAttempt: Sendable {
    var id: UUID
    var number: Int
    var key: String
    var target: String
    var state: AttemptState
    var externalID: String?
    /// True when the agent heartbeated once and then stopped for longer than the timeout.
    var heartbeatStale: Bool
    /// The checkpoint placement chose for it to resume from.
    var resume: ResumePoint?
}

/// One change to a job, and maybe its live attempt, written atomically and fenced by the lease:
/// applied only if the job still has our epoch and the expected state, and the attempt only if
/// the job's part applied.
struct JobWrite: Sendable {
    var jobID: UUID
    var epoch: Int64
    var from: JobState
    var to: JobState
    /// The `job_events` kind, or nil to write no event (an attempt's progress the job does not see).
    var eventKind: String?
    /// `jobs.failure_reason` after the write (the transition's reason).
    var jobReason: String?
    /// The event's reason (the job's reason, else the attempt's end reason).
    var eventReason: String?
    var message: String?
    /// Event details as a JSON object.
    var details: [String: String]?
    var restartsDelta = 0
    var preemptionsDelta = 0
    /// Seconds from now before the next placement, when this write sets a backoff.
    var backoff: Double?
    var attempt: AttemptWrite?

    var attemptID: UUID? { attempt?.id }
}

struct AttemptWrite: Sendable {
    var id: UUID
    var from: AttemptState
    var to: AttemptState
    var endReason: String?
    var exitCode: Int32?
    var externalID: String?
}

/// A new attempt: its row, the job's move to `starting`, and the `attempt_launched` event.
struct PlacementWrite: Sendable {
    var jobID: UUID
    var epoch: Int64
    var from: JobState
    var attemptID: UUID
    var number: Int
    var key: String
    var target: String
    var region: String? = nil
    var offer: String? = nil
    var hourlyPrice: Double? = nil
    var resume: ResumePoint?
    /// The placement decision as a JSON object (every candidate with its score or exclusion).
    var placementJSON: String
    var message: String
}

/// The scheduler's SQL. Every write is conditioned on `lease_owner = me AND lease_epoch = mine`
/// and on the state it expects, so a replica that lost a job (or a user who cancelled it in
/// between) makes the write touch no row instead of overwriting someone else's truth.
struct SchedulerStore: Sendable {
    let pool: PostgresPool
    /// This replica's lease owner name.
    let owner: String
    let leaseSeconds: Double

    static let terminal = "('succeeded', 'failed', 'cancelled')"

    // MARK: Claiming

    /// Claims up to `limit` pending jobs nobody holds, highest priority first, in submission order
    /// within one priority: one statement, `FOR UPDATE SKIP LOCKED` so replicas never wait for each
    /// other, bumping each job's lease epoch.
    func claimPending(limit: Int) async throws -> [(UUID, Int64)] {
        let rows = try await pool.query("""
            WITH picked AS (
                SELECT id FROM jobs
                WHERE state = 'pending' AND lease_owner IS NULL
                ORDER BY priority DESC, created_at, submit_seq
                FOR UPDATE SKIP LOCKED
                LIMIT \(limit)
            )
            UPDATE jobs j SET lease_owner = \(owner), lease_epoch = j.lease_epoch + 1,
                   lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            FROM picked WHERE j.id = picked.id
            RETURNING j.id, j.lease_epoch
            """, prepared: true)
        return try rows.map { try $0.decode(UUID.self, Int64.self) }
    }

    /// Claims live jobs whose replica is gone: lease expired, released (no owner, past pending), or
    /// held by one of `deadOwners` (processes of this host that no longer run).
    func claimOrphans(limit: Int, deadOwners: [String]) async throws -> [(UUID, Int64)] {
        let rows = try await pool.query("""
            WITH picked AS (
                SELECT id FROM jobs
                WHERE state NOT IN \(unsafeSQL: Self.terminal)
                  AND ((lease_owner IS NULL AND state <> 'pending') OR lease_expires_at < now() OR lease_owner = ANY(\(deadOwners)::text[]))
                ORDER BY priority DESC, created_at, submit_seq
                FOR UPDATE SKIP LOCKED
                LIMIT \(limit)
            )
            UPDATE jobs j SET lease_owner = \(owner), lease_epoch = j.lease_epoch + 1,
                   lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            FROM picked WHERE j.id = picked.id
            RETURNING j.id, j.lease_epoch
            """)
        return try rows.map { try $0.decode(UUID.self, Int64.self) }
    }

    /// Owners holding live leases right now (to tell which of them are dead processes on this host).
    func liveOwners() async throws -> [String] {
        let rows = try await pool.query("""
            SELECT DISTINCT lease_owner FROM jobs
            WHERE state NOT IN \(unsafeSQL: Self.terminal) AND lease_owner IS NOT NULL AND lease_owner <> \(owner)
            """)
        return try rows.map { try $0.decode(String.self, at: 0) }
    }

    /// Extends the leases of the jobs we hold; returns the ids still ours (the others were taken over).
    func renew(_ jobs: [(UUID, Int64)]) async throws -> Set<UUID> {
        if jobs.isEmpty { return [] }
        let rows = try await pool.query("""
            UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            FROM unnest(\(jobs.map(\.0))::uuid[], \(jobs.map(\.1))::int8[]) AS m(id, epoch)
            WHERE j.id = m.id AND j.lease_epoch = m.epoch AND j.lease_owner = \(owner)
              AND j.state NOT IN \(unsafeSQL: Self.terminal)
            RETURNING j.id
            """)
        return Set(try rows.map { try $0.decode(UUID.self, at: 0) })
    }

    /// Gives every lease back (graceful shutdown): another replica adopts the jobs at once.
    func releaseAll() async throws {
        try await pool.query("""
            UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
            WHERE lease_owner = \(owner) AND state NOT IN \(unsafeSQL: Self.terminal)
            """)
    }

    // MARK: Reading

    /// The jobs among `ids` we still hold, with their live attempt. Specs come from `specs` (by spec
    /// hash) when cached there: decoding the same spec for every job of a sweep would cost more than
    /// the rest of the tick. New specs are decoded once and added.
    func load(_ jobs: [(UUID, Int64)], heartbeatTimeout: Double, specs: inout [String: JobSpec]) async throws -> [OwnedJob] {
        if jobs.isEmpty { return [] }
        let rows = try await pool.query("""
            SELECT j.id, j.lease_epoch, j.name, j.state, j.restarts, j.preemptions, j.workdir_base, j.migrate_to, j.stop_grace_seconds,
                   (j.next_attempt_at IS NULL OR j.next_attempt_at <= now()) AS due,
                   extract(epoch FROM now() - j.started_at)::float8 AS running_seconds,
                   j.spec_hash, CASE WHEN j.spec_hash = ANY(\(Array(specs.keys))::text[]) THEN NULL ELSE j.spec::text END AS spec,
                   last.number AS attempts, last.target AS last_target, last.state AS last_state,
                   a.id AS attempt_id, a.number AS attempt_number, a.idempotency_key, a.target, a.state AS attempt_state, a.external_id,
                   (a.state = 'running' AND a.heartbeat_at < now() - make_interval(secs => \(heartbeatTimeout))) AS stale,
                   a.resume_checkpoint,
                   (SELECT min(c.step) FROM job_checkpoints c WHERE c.job_id = j.id AND c.checkpoint_id = a.resume_checkpoint) AS resume_step
            FROM unnest(\(jobs.map(\.0))::uuid[], \(jobs.map(\.1))::int8[]) AS m(id, epoch)
            JOIN jobs j ON j.id = m.id AND j.lease_epoch = m.epoch AND j.lease_owner = \(owner)
            LEFT JOIN LATERAL (
                SELECT number, target, state FROM attempts x WHERE x.job_id = j.id ORDER BY number DESC LIMIT 1
            ) last ON true
            LEFT JOIN attempts a ON a.job_id = j.id AND a.state IN ('launching', 'queued', 'running')
            """)
        var loaded: [OwnedJob] = []
        loaded.reserveCapacity(rows.count)
        for row in rows {
            let id = try row.decode(UUID.self, column: "id")
            let hash = try row.decode(String.self, column: "spec_hash")
            let spec: JobSpec
            if let cached = specs[hash] {
                spec = cached
            } else {
                let text = try row.decode(String.self, column: "spec")
                spec = try JSONDecoder().decode(JobSpec.self, from: Data(text.utf8))
                specs[hash] = spec
            }
            var live: LiveAttempt?
            if let attemptID = try row.decode(UUID?.self, column: "attempt_id") {
                live = LiveAttempt(
                    id: attemptID, number: try row.decode(Int.self, column: "attempt_number"),
                    key: try row.decode(String.self, column: "idempotency_key"), target: try row.decode(String.self, column: "target"),
                    state: try Self.attemptState(try row.decode(String.self, column: "attempt_state")),
                    externalID: try row.decode(String?.self, column: "external_id"),
                    heartbeatStale: try row.decode(Bool?.self, column: "stale") ?? false)
                if let checkpoint = try row.decode(String?.self, column: "resume_checkpoint") {
                    live?.resume = ResumePoint(checkpointID: checkpoint, step: try row.decode(Int64?.self, column: "resume_step") ?? 0)
                }
            }
            loaded.append(OwnedJob(
                id: id, epoch: try row.decode(Int64.self, column: "lease_epoch"), name: try row.decode(String.self, column: "name"),
                state: try JobRepository.jobState(try row.decode(String.self, column: "state")), spec: spec,
                workdirBase: try row.decode(String?.self, column: "workdir_base"),
                restarts: try row.decode(Int.self, column: "restarts"), preemptions: try row.decode(Int.self, column: "preemptions"),
                placementDue: try row.decode(Bool.self, column: "due"),
                runningSeconds: try row.decode(Double?.self, column: "running_seconds"),
                attempts: try row.decode(Int?.self, column: "attempts") ?? 0,
                lastTarget: try row.decode(String?.self, column: "last_target"),
                lastAttemptState: try row.decode(String?.self, column: "last_state").flatMap(AttemptState.init(rawValue:)),
                migrateTo: try row.decode(String?.self, column: "migrate_to"),
                stopGrace: try row.decode(Double?.self, column: "stop_grace_seconds"),
                live: live))
        }
        return loaded
    }

    /// For each (job, store), the newest checkpoint of the job committed on that store.
    func newestCommitted(_ wanted: [(job: UUID, store: String)]) async throws -> [UUID: ResumePoint] {
        if wanted.isEmpty { return [:] }
        let rows = try await pool.query("""
            SELECT DISTINCT ON (w.job) w.job, l.checkpoint_id, l.step
            FROM unnest(\(wanted.map(\.job))::uuid[], \(wanted.map(\.store))::text[]) AS w(job, store)
            JOIN job_checkpoints l ON l.job_id = w.job
            JOIN replicas r ON r.checkpoint_id = l.checkpoint_id AND r.store_url = w.store AND r.state = 'committed'
            ORDER BY w.job, l.step DESC, l.created_at DESC
            """)
        var points: [UUID: ResumePoint] = [:]
        for row in rows {
            let (job, id, step) = try row.decode(UUID.self, String.self, Int64.self)
            points[job] = ResumePoint(checkpointID: id, step: step)
        }
        return points
    }

    /// For each job, the newest checkpoint committed on any store, where it is committed, and the
    /// bytes of it each of `stores` lacks (files whose root no committed checkpoint there holds).
    func resumeFacts(jobs: [UUID], stores: [String]) async throws -> [UUID: ResumeFacts] {
        if jobs.isEmpty { return [:] }
        let newest = try await pool.query("""
            SELECT DISTINCT ON (l.job_id) l.job_id, l.checkpoint_id, l.step, c.bytes
            FROM job_checkpoints l JOIN checkpoints c ON c.id = l.checkpoint_id
            WHERE l.job_id = ANY(\(jobs)::uuid[])
              AND EXISTS (SELECT 1 FROM replicas r WHERE r.checkpoint_id = l.checkpoint_id AND r.state = 'committed')
            ORDER BY l.job_id, l.step DESC, l.created_at DESC
            """)
        var facts: [UUID: ResumeFacts] = [:]
        for row in newest {
            let (job, id, step, bytes) = try row.decode(UUID.self, String.self, Int64.self, Int64.self)
            facts[job] = ResumeFacts(checkpointID: id, step: step, totalBytes: bytes, committedOn: [], missingBytes: [:])
        }
        let ids = Array(Set(facts.values.map(\.checkpointID)))
        if ids.isEmpty { return facts }
        var committed: [String: Set<String>] = [:]
        for row in try await pool.query("SELECT checkpoint_id, store_url FROM replicas WHERE checkpoint_id = ANY(\(ids)::text[]) AND state = 'committed'") {
            let (id, store) = try row.decode(String.self, String.self)
            committed[id, default: []].insert(store)
        }
        var missing: [String: [String: Int64]] = [:]
        if !stores.isEmpty {
            let rows = try await pool.query("""
                SELECT f.checkpoint_id, s.store,
                       coalesce(sum(f.size) FILTER (WHERE NOT EXISTS (
                           SELECT 1 FROM checkpoint_files g JOIN replicas r ON r.checkpoint_id = g.checkpoint_id
                           WHERE g.root = f.root AND r.store_url = s.store AND r.state = 'committed')), 0)::int8 AS missing
                FROM checkpoint_files f CROSS JOIN unnest(\(stores)::text[]) AS s(store)
                WHERE f.checkpoint_id = ANY(\(ids)::text[])
                GROUP BY f.checkpoint_id, s.store
                """)
            for row in rows {
                let (id, store, bytes) = try row.decode(String.self, String.self, Int64.self)
                missing[id, default: [:]][store] = bytes
            }
        }
        for (job, fact) in facts {
            facts[job]?.committedOn = committed[fact.checkpointID] ?? []
            facts[job]?.missingBytes = missing[fact.checkpointID] ?? [:]
        }
        return facts
    }

    /// The database's clock.
    func databaseNow() async throws -> Date {
        try await pool.query("SELECT now()").scalar(Date.self)
    }

    /// Capacity blocks in force now.
    func capacityBlocks() async throws -> [CapacityBlock] {
        let rows = try await pool.query("SELECT target, region, offer, blocked_until, error FROM capacity_blocks WHERE blocked_until > now()")
        return try rows.map { row in
            let (target, region, offer, until, error) = try row.decode(String.self, String.self, String.self, Date.self, String?.self)
            return CapacityBlock(target: target, region: region, offer: offer, until: until, error: error)
        }
    }

    /// Blocks an offer of a target for `seconds` (database time) after it refused for lack of capacity.
    func block(target: String, region: String?, offer: String, seconds: Double, error: String) async throws {
        try await pool.query("""
            INSERT INTO capacity_blocks (target, region, offer, blocked_until, error)
            VALUES (\(target), \(region ?? ""), \(offer), now() + make_interval(secs => \(seconds)), \(String(error.prefix(500))))
            ON CONFLICT (target, region, offer) DO UPDATE SET blocked_until = excluded.blocked_until, error = excluded.error, created_at = now()
            """)
    }

    /// The offer and region an attempt was placed with.
    func offer(ofAttempt id: UUID) async throws -> (region: String?, offer: String?) {
        let rows = try await pool.query("SELECT region, offer FROM attempts WHERE id = \(id)")
        guard let row = rows.first else { return (nil, nil) }
        return try row.decode(String?.self, String?.self)
    }

    // MARK: Writing

    /// Writes new attempts (placement). Returns the jobs whose write applied.
    func place(_ writes: [PlacementWrite], scheduler: String) async throws -> Set<UUID> {
        if writes.isEmpty { return [] }
        let rows = try await pool.query("""
            WITH input AS (
                SELECT * FROM unnest(\(writes.map(\.jobID))::uuid[], \(writes.map(\.epoch))::int8[], \(writes.map(\.from.rawValue))::text[],
                                     \(writes.map(\.attemptID))::uuid[], \(writes.map(\.number))::int8[], \(writes.map(\.key))::text[],
                                     \(writes.map(\.target))::text[], \(NullableTextArray(writes.map { $0.resume?.checkpointID }))::text[],
                                     \(writes.map(\.placementJSON))::text[], \(writes.map(\.message))::text[],
                                     \(NullableTextArray(writes.map(\.region)))::text[], \(NullableTextArray(writes.map(\.offer)))::text[],
                                     \(NullableTextArray(writes.map { $0.hourlyPrice.map { String($0) } }))::text[])
                     AS i(job_id, epoch, from_state, attempt_id, number, key, target, resume, placement, message, region, offer, hourly_price)
            ),
            moved AS (
                UPDATE jobs j SET state = 'starting', failure_reason = NULL, next_attempt_at = NULL, migrate_to = NULL, stop_grace_seconds = NULL
                FROM input i
                WHERE j.id = i.job_id AND j.lease_epoch = i.epoch AND j.lease_owner = \(owner) AND j.state = i.from_state
                RETURNING j.id
            ),
            inserted AS (
                INSERT INTO attempts (id, job_id, number, idempotency_key, target, resume_checkpoint, placement, scheduler, region, offer, hourly_price)
                SELECT i.attempt_id, i.job_id, i.number, i.key, i.target, i.resume, i.placement::jsonb, \(scheduler), i.region, i.offer,
                       i.hourly_price::numeric
                FROM input i JOIN moved m ON m.id = i.job_id
                RETURNING id
            ),
            events AS (
                INSERT INTO job_events (job_id, attempt_id, kind, from_state, to_state, message, details)
                SELECT i.job_id, i.attempt_id, 'attempt_launched', i.from_state, 'starting', i.message, i.placement::jsonb
                FROM input i JOIN moved m ON m.id = i.job_id
            )
            SELECT id FROM moved
            """)
        return Set(try rows.map { try $0.decode(UUID.self, at: 0) })
    }

    /// Applies job (and attempt) transitions. Returns the jobs whose write applied.
    func apply(_ writes: [JobWrite]) async throws -> Set<UUID> {
        if writes.isEmpty { return [] }
        func text<T>(_ path: (JobWrite) -> T?, _ render: (T) -> String) -> NullableTextArray {
            NullableTextArray(writes.map { path($0).map(render) })
        }
        let details = text({ $0.details }) { JSONValue.object($0.mapValues(JSONValue.string)).canonicalText }
        let rows = try await pool.query("""
            WITH input AS (
                SELECT * FROM unnest(
                    \(writes.map(\.jobID))::uuid[], \(writes.map(\.epoch))::int8[], \(writes.map(\.from.rawValue))::text[],
                    \(writes.map(\.to.rawValue))::text[], \(text({ $0.eventKind }, { $0 }))::text[], \(text({ $0.jobReason }, { $0 }))::text[],
                    \(text({ $0.eventReason }, { $0 }))::text[], \(text({ $0.message }, { $0 }))::text[], \(details)::text[],
                    \(writes.map(\.restartsDelta))::int8[], \(writes.map(\.preemptionsDelta))::int8[], \(text({ $0.backoff }, { String($0) }))::text[],
                    \(text({ $0.attempt?.id }, { $0.uuidString }))::text[], \(text({ $0.attempt?.from }, { $0.rawValue }))::text[],
                    \(text({ $0.attempt?.to }, { $0.rawValue }))::text[], \(text({ $0.attempt?.endReason }, { $0 }))::text[],
                    \(text({ $0.attempt?.exitCode }, { String($0) }))::text[], \(text({ $0.attempt?.externalID }, { $0 }))::text[])
                AS i(job_id, epoch, from_state, to_state, kind, job_reason, event_reason, message, details, restarts, preemptions, backoff,
                     attempt_id, attempt_from, attempt_to, end_reason, exit_code, external_id)
            ),
            moved AS (
                UPDATE jobs j
                SET state = i.to_state,
                    failure_reason = CASE WHEN i.to_state = 'cancelled' THEN NULL ELSE i.job_reason END,
                    finished_at = CASE WHEN i.to_state IN \(unsafeSQL: Self.terminal) THEN now() END,
                    restarts = j.restarts + i.restarts,
                    preemptions = j.preemptions + i.preemptions,
                    next_attempt_at = CASE WHEN i.backoff IS NULL THEN j.next_attempt_at
                                           ELSE now() + make_interval(secs => i.backoff::float8) END,
                    started_at = CASE WHEN i.attempt_to = 'running' THEN coalesce(j.started_at, now()) ELSE j.started_at END,
                    lease_owner = CASE WHEN i.to_state IN \(unsafeSQL: Self.terminal) THEN NULL ELSE j.lease_owner END,
                    lease_expires_at = CASE WHEN i.to_state IN \(unsafeSQL: Self.terminal) THEN NULL ELSE j.lease_expires_at END
                FROM input i
                WHERE j.id = i.job_id AND j.lease_epoch = i.epoch AND j.lease_owner = \(owner) AND j.state = i.from_state
                RETURNING j.id
            ),
            attempt AS (
                UPDATE attempts a
                SET state = i.attempt_to,
                    end_reason = coalesce(i.end_reason, a.end_reason),
                    exit_code = coalesce(i.exit_code::integer, a.exit_code),
                    external_id = coalesce(i.external_id, a.external_id),
                    started_at = CASE WHEN i.attempt_to = 'running' THEN coalesce(a.started_at, now()) ELSE a.started_at END,
                    ended_at = CASE WHEN i.attempt_to IN ('succeeded', 'failed', 'preempted', 'lost', 'cancelled') THEN now() END
                FROM input i JOIN moved m ON m.id = i.job_id
                WHERE a.id = i.attempt_id::uuid AND a.state = i.attempt_from
                RETURNING a.id
            ),
            events AS (
                INSERT INTO job_events (job_id, attempt_id, kind, from_state, to_state, reason, message, details)
                SELECT i.job_id, i.attempt_id::uuid, i.kind, i.from_state, i.to_state, i.event_reason, i.message, i.details::jsonb
                FROM input i JOIN moved m ON m.id = i.job_id
                WHERE i.kind IS NOT NULL
            )
            SELECT id FROM moved
            """)
        return Set(try rows.map { try $0.decode(UUID.self, at: 0) })
    }

    static func attemptState(_ text: String) throws -> AttemptState {
        guard let state = AttemptState(rawValue: text) else {
            throw JobRepositoryError("the database holds attempt state \"\(text)\", which this version of Tern does not know")
        }
        return state
    }
}
