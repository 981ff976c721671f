public import Foundation
public import TernModel
public import TernPostgres

/// A job to submit: the input of ``JobRepository/submit(_:)``.
public struct NewJob: Sendable, Hashable, Codable {
    public var name: String
    /// The normalised spec as canonical JSON text (sorted keys, no insignificant whitespace).
    public var specJSON: String
    /// Lowercase hex SHA-256 of `specJSON`'s bytes.
    public var specHash: String
    /// Higher runs first.
    public var priority: Int
    public var labels: [String: String]
    /// An idempotency key: submitting a job whose key is already stored returns the stored job and
    /// writes nothing, so a client may retry a submission whose answer it never saw.
    public var submitKey: String?
    /// The absolute directory the spec's relative `workdir` is resolved against on local and Slurm
    /// targets: where `tern submit` ran. Not part of the spec or its hash.
    public var workdirBase: String?

    public init(name: String, specJSON: String, specHash: String, priority: Int = 0, labels: [String: String] = [:], submitKey: String? = nil,
                workdirBase: String? = nil) {
        self.name = name
        self.specJSON = specJSON
        self.specHash = specHash
        self.priority = priority
        self.labels = labels
        self.submitKey = submitKey
        self.workdirBase = workdirBase
    }
}

extension NewJob {
    /// The job to store for a validated spec: its canonical JSON and hash, encoded once.
    public init(spec: JobSpec, submitKey: String? = nil, workdirBase: String? = nil) {
        let normalised = spec.normalised
        self.init(name: spec.name, specJSON: normalised.json, specHash: normalised.hash, priority: spec.priority,
                  labels: spec.labels, submitKey: submitKey, workdirBase: workdirBase)
    }
}

/// A stored job (a `jobs` row and the target of its latest attempt).
public struct JobRecord: Sendable, Hashable, Codable {
    /// Made by the database; stable across attempts (`TERN_JOB_ID`).
    public var id: UUID
    public var name: String
    public var state: JobState
    /// A `FailureReason` raw value (kept as text so reasons added by a newer Tern still read).
    /// Set for failed jobs and for waiting ones that could not be placed; nil for a cancelled job
    /// (the `cancel_requested` event carries `cancelled_by_user`).
    public var failureReason: String?
    public var priority: Int
    public var labels: [String: String]
    public var specHash: String
    /// The spec as JSON text: the same JSON value that was submitted, but not always the same
    /// bytes. A job just stored by ``JobRepository/submit(_:)`` carries the submitted text; a job
    /// read from the database carries PostgreSQL's rendering of the stored `jsonb` (keys ordered
    /// by length, spaces added). Re-canonicalise it before hashing; compare ``specHash`` to
    /// compare specs.
    public var specJSON: String
    public var restarts: Int
    public var preemptions: Int
    public var submitKey: String?
    /// Set by the database (the submitting transaction's time).
    public var createdAt: Date
    public var updatedAt: Date
    /// Set when the job reached a terminal state.
    public var finishedAt: Date?
    /// The target of the job's latest attempt; nil before the first placement.
    public var target: String?

    public init(
        id: UUID, name: String, state: JobState, failureReason: String?, priority: Int, labels: [String: String], specHash: String,
        specJSON: String, restarts: Int, preemptions: Int, submitKey: String?, createdAt: Date, updatedAt: Date, finishedAt: Date?,
        target: String?
    ) {
        self.id = id
        self.name = name
        self.state = state
        self.failureReason = failureReason
        self.priority = priority
        self.labels = labels
        self.specHash = specHash
        self.specJSON = specJSON
        self.restarts = restarts
        self.preemptions = preemptions
        self.submitKey = submitKey
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
        self.target = target
    }
}

/// One `job_events` row.
public struct JobEventRecord: Sendable, Hashable, Codable {
    /// Increases with every event written; orders a job's events.
    public var id: Int64
    public var jobID: UUID
    /// The attempt the event is about, if any.
    public var attemptID: UUID?
    /// Set by the database.
    public var at: Date
    /// `submitted`, or a `JobEvent.name` such as `cancel_requested`.
    public var kind: String
    /// State names before and after; text because attempt events may record attempt states.
    public var fromState: String?
    public var toState: String?
    /// A `FailureReason` raw value, where the event has a reason.
    public var reason: String?
    public var message: String?
    /// Event details as JSON object text, if any.
    public var detailsJSON: String?

    public init(
        id: Int64, jobID: UUID, attemptID: UUID?, at: Date, kind: String, fromState: String?, toState: String?, reason: String?,
        message: String?, detailsJSON: String?
    ) {
        self.id = id
        self.jobID = jobID
        self.attemptID = attemptID
        self.at = at
        self.kind = kind
        self.fromState = fromState
        self.toState = toState
        self.reason = reason
        self.message = message
        self.detailsJSON = detailsJSON
    }
}

/// What ``JobRepository/cancel(jobID:)`` did.
public struct CancelOutcome: Sendable, Hashable, CustomStringConvertible {
    /// How the request ended.
    public enum Verdict: String, Sendable, Hashable, Codable {
        /// Written: the job moved, with a `cancel_requested` event.
        case moved
        /// Nothing written: the job had already finished.
        case alreadyFinished = "already_finished"
        /// Nothing written: a cancel is already under way.
        case alreadyCancelling = "already_cancelling"
        /// Nothing written: the state machine refused for another reason (see ``message``).
        case refused
    }

    /// The job's state when the request arrived.
    public var from: JobState
    /// The job's state afterwards: `cancelled` for a pending job (nothing ran), `cancelling` for
    /// one whose attempt may be alive (the scheduler stops it, then finishes the cancel), or
    /// `from` when nothing was written.
    public var to: JobState
    public var verdict: Verdict
    /// For people: the move (`running → cancelling`), or why nothing changed (`it already succeeded`).
    public var message: String

    public init(from: JobState, to: JobState, verdict: Verdict, message: String) {
        self.from = from
        self.to = to
        self.verdict = verdict
        self.message = message
    }

    /// True when the call wrote the transition.
    public var changed: Bool { verdict == .moved }

    public var description: String { message }
}

/// A job in an ambiguity report.
public struct JobCandidate: Sendable, Hashable, Codable {
    public var id: UUID
    public var name: String
    public var state: JobState
    public var createdAt: Date

    public init(id: UUID, name: String, state: JobState, createdAt: Date) {
        self.id = id
        self.name = name
        self.state = state
        self.createdAt = createdAt
    }
}

/// Why ``JobRepository/resolve(_:)`` (or another lookup by id) found no single job.
public enum JobLookupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No job has this id, id prefix or name prefix.
    case notFound(reference: String)
    /// Several jobs match; `candidates` are the newest (at most 5) and `more` says whether others
    /// match too.
    case ambiguous(reference: String, candidates: [JobCandidate], more: Bool)

    public var description: String {
        switch self {
        case .notFound(let reference):
            return "no job matches \"\(reference)\"; give a job id, a unique prefix of one, or a unique prefix of a job name (see `tern jobs`)"
        case .ambiguous(let reference, let candidates, let more):
            var text = "\"\(reference)\" matches more than one job; give more of the id or the name:"
            for candidate in candidates {
                text += "\n  \(candidate.id.uuidString.lowercased())  \(candidate.name)  (\(candidate.state.rawValue))"
            }
            if more { text += "\n  … and more" }
            return text
        }
    }
}

/// The database answered something the schema should make impossible.
public struct JobRepositoryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The `jobs` and `job_events` tables: submitting, listing, finding and cancelling jobs.
///
/// Every time is the database's `now()`. Writes here take no lease: they are user actions, and a
/// scheduler replica's own writes are fenced by `lease_epoch` *and* conditioned on the state they
/// expect, so a cancel that lands between a replica's read and its write makes that write touch no
/// row.
public struct JobRepository: Sendable {
    let pool: PostgresPool
    /// Jobs per statement in ``submit(_:)``; larger submissions send several statements in one
    /// pipeline (one round trip, one implicit transaction).
    public var submitBatchSize: Int

    /// Jobs per statement unless told otherwise.
    public static let defaultSubmitBatchSize = 1000

    public init(pool: PostgresPool, submitBatchSize: Int = defaultSubmitBatchSize) {
        precondition(submitBatchSize > 0, "a batch holds at least one job")
        self.pool = pool
        self.submitBatchSize = submitBatchSize
    }

    // MARK: Submit

    /// Stores jobs as `pending`, each with a `submitted` event, and returns them in input order.
    ///
    /// One statement per batch of ``submitBatchSize`` jobs (a data-modifying CTE inserting the jobs
    /// and their events from `unnest` of array parameters), all batches in one pipeline: one round
    /// trip and one transaction, so either every job is stored or none is.
    ///
    /// A job whose `submitKey` is already stored is not stored again: its slot in the result holds
    /// the stored job (whatever its state now), and no event is written. The same key twice in one
    /// call stores the first and returns it for both. Concurrent submissions of one key store it
    /// once (`ON CONFLICT (submit_key) DO NOTHING` waits for the other transaction).
    ///
    /// A submission holds one connection; concurrent calls (one per task) use up to the pool's
    /// connections at once, so a caller that does not need all-or-nothing can split a large
    /// submission across tasks for more throughput on a many-core server.
    public func submit(_ jobs: [NewJob]) async throws -> [JobRecord] {
        if jobs.isEmpty { return [] }
        var batches: [Range<Int>] = []
        var start = 0
        while start < jobs.count {
            let end = min(start + submitBatchSize, jobs.count)
            batches.append(start..<end)
            start = end
        }
        var queries = try batches.map { try Self.submitStatement(jobs[$0]) }
        let keys = jobs.compactMap(\.submitKey)
        if !keys.isEmpty { queries.insert(Self.keyStripeLocks(keys), at: 0) }
        // One notification per submission, not per job (a NOTIFY per row costs the server dearly):
        // it wakes the schedulers, and is delivered only if the submission commits.
        queries.append(Self.wakeSchedulers)

        // The key stripes rule out deadlocks between submissions; a retry is for anything else
        // transient (the whole implicit transaction was rolled back, so sending it again is safe).
        var answers: [PostgresResult] = []
        var tries = 0
        while true {
            do {
                answers = try await pool.withConnection { connection in
                    queries.count == 1 ? [try await connection.query(queries[0])] : try await connection.pipeline(queries)
                }
                break
            } catch let error as PostgresError where error.isTransient && tries < Self.transientRetries {
                tries += 1
            }
        }
        if !keys.isEmpty { answers.removeFirst() }
        answers.removeLast()

        var results = [JobRecord?](repeating: nil, count: jobs.count)
        var byKey: [String: JobRecord] = [:]
        for (batch, rows) in zip(batches, answers) {
            for row in rows {
                // `ord` (1-based within the batch) is set for jobs this call inserted, NULL for
                // jobs that were already stored under a key.
                let record: JobRecord
                if let ord = try row.decode(Int?.self, column: "ord") {
                    let index = batch.lowerBound + ord - 1
                    record = try Self.insertedRecord(from: row, job: jobs[index])
                    results[index] = record
                } else {
                    record = try Self.record(from: row)
                }
                if let key = record.submitKey { byKey[key] = record }
            }
        }
        var missingKeys: [String] = []
        for index in jobs.indices where results[index] == nil {
            guard let key = jobs[index].submitKey else {
                throw JobRepositoryError("job \(index + 1) of the submission has no submit key and was not stored")
            }
            if let record = byKey[key] {
                results[index] = record
            } else {
                missingKeys.append(key)
            }
        }
        if !missingKeys.isEmpty {
            // These keys were inserted by transactions that committed after our statement's snapshot
            // was taken (ON CONFLICT waited for them); a new statement sees them.
            let rows = try await pool.query("""
                SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j WHERE j.submit_key = ANY(\(missingKeys)::text[])
                """)
            for row in rows {
                let record = try Self.record(from: row)
                if let key = record.submitKey { byKey[key] = record }
            }
            for index in jobs.indices where results[index] == nil {
                guard let key = jobs[index].submitKey, let record = byKey[key] else {
                    throw JobRepositoryError("the job with submit key \"\(jobs[index].submitKey ?? "")\" conflicted with a stored job that then could not be read")
                }
                results[index] = record
            }
        }
        return results.map { $0! }
    }

    /// Stores the jobs `nextBatch` hands over, one batch after another, in one transaction, and
    /// returns them in the order handed over; `nextBatch` returns nil when there are no more.
    ///
    /// While the server inserts one batch, `nextBatch` is already preparing the next (parsing and
    /// checking specs, say): the client's work and the server's overlap instead of taking turns.
    /// Each batch is one statement of ``submit(_:)``'s form. Either every job is stored or none is:
    /// when `nextBatch` throws, the batch in flight is awaited (or cancelled), the transaction rolls
    /// back and the error is rethrown. One `submitted` notification is sent, on commit.
    ///
    /// Jobs here must not carry a `submitKey` (this throws): keyed submissions take their key
    /// stripes' locks before inserting anything, which needs every key up front; use ``submit(_:)``.
    /// A transient failure (deadlock, serialization) is not retried either, since the batches are
    /// gone once handed over.
    public func submit(streaming nextBatch: () async throws -> [NewJob]?) async throws -> [JobRecord] {
        try await pool.withTransaction { connection in
            var records: [JobRecord] = []
            var inFlight: (jobs: [NewJob], answer: Task<PostgresResult, any Error>)?
            do {
                // The body of a transaction runs on the connection's thread, and so would the
                // producer's child tasks (a task executor preference is inherited): the producer
                // runs on the shared pool instead, on every core.
                while let jobs = try await withTaskExecutorPreference(globalConcurrentExecutor, operation: nextBatch) {
                    if jobs.isEmpty { continue }
                    if jobs.contains(where: { $0.submitKey != nil }) {
                        throw JobRepositoryError("a streamed submission cannot hold submit keys; submit keyed jobs in one call")
                    }
                    let statement = try Self.submitStatement(jobs[...])
                    if let previous = inFlight {
                        records += try Self.insertedRecords(from: await previous.answer.value, jobs: previous.jobs)
                    }
                    // Started on the connection's own thread: a task queued for the shared pool
                    // would wait there until the producer's workers leave a core free.
                    inFlight = (jobs, Task(executorPreference: connection.taskExecutor) { try await connection.query(statement) })
                }
                if let previous = inFlight {
                    inFlight = nil
                    records += try Self.insertedRecords(from: await previous.answer.value, jobs: previous.jobs)
                }
            } catch {
                // The connection serves one statement at a time: let the batch in flight end
                // before the rollback is sent.
                if let previous = inFlight {
                    previous.answer.cancel()
                    _ = try? await previous.answer.value
                }
                throw error
            }
            if !records.isEmpty { try await connection.query(Self.wakeSchedulers) }
            return records
        }
    }

    /// The records of one batch statement without keys: every row is a job it inserted, in order.
    static func insertedRecords(from rows: PostgresResult, jobs: [NewJob]) throws -> [JobRecord] {
        var records = [JobRecord?](repeating: nil, count: jobs.count)
        for row in rows {
            guard let ord = try row.decode(Int?.self, column: "ord"), (1...jobs.count).contains(ord) else {
                throw JobRepositoryError("the submission returned a row that is not one of the jobs it inserted")
            }
            records[ord - 1] = try Self.insertedRecord(from: row, job: jobs[ord - 1])
        }
        guard !records.contains(where: { $0 == nil }) else {
            throw JobRepositoryError("the submission stored \(records.count { $0 != nil }) of \(jobs.count) jobs")
        }
        return records.map { $0! }
    }

    /// How often ``submit(_:)`` sends a submission again after a deadlock or serialization failure.
    static let transientRetries = 3

    /// The advisory-lock namespace of submit-key stripes ("tern" as a 32-bit integer), the first
    /// half of a two-key advisory lock, apart from the single-key locks (migrations) by construction.
    static let keyStripeNamespace: Int32 = 0x7465_726E
    /// How many stripes submit keys hash into.
    static let keyStripes: Int32 = 64

    /// Takes, in ascending order, a transaction advisory lock on every stripe the keys hash into.
    ///
    /// Why: `ON CONFLICT` makes an insert wait for any open transaction that inserted the same key.
    /// Two submissions holding some keys each and waiting for the other's would deadlock (the
    /// server aborts one after `deadlock_timeout`). Every submission with keys takes its stripes
    /// first, always in the same order, so one waits for the other instead. Submissions whose keys
    /// share no stripe still run side by side; a lock per stripe, not per key, keeps a 10,000-key
    /// submission within the server's lock table.
    static func keyStripeLocks(_ keys: [String]) -> PostgresQuery {
        """
        SELECT pg_advisory_xact_lock(\(keyStripeNamespace), s.stripe)
        FROM (SELECT DISTINCT (hashtext(k) & 2147483647) % \(keyStripes) AS stripe FROM unnest(\(keys)::text[]) AS k ORDER BY 1) AS s
        """
    }

    /// One batch's statement. Arrays travel as `text[]` (JSON as text, cast by the server), one
    /// parameter per column, so a batch is six bound values whatever its size.
    static func submitStatement(_ jobs: ArraySlice<NewJob>) throws -> PostgresQuery {
        let names = jobs.map(\.name)
        let specs = jobs.map(\.specJSON)
        let hashes = jobs.map(\.specHash)
        let priorities = jobs.map(\.priority)
        let labels = jobs.map { labelsJSON($0.labels) }
        let keys = NullableTextArray(jobs.map(\.submitKey))
        let bases = NullableTextArray(jobs.map(\.workdirBase))
        // `input` is MATERIALIZED (gen_random_uuid() is volatile, so it would be anyway): each input
        // row gets one id, which the final SELECT joins back to its position.
        // A freshly inserted job comes back as its id, position and the columns the database
        // filled in; the caller has the rest, so 10,000 specs do not travel back.
        // The final SELECT cannot see rows inserted by this same statement (one snapshot for all
        // its parts), so its second half returns exactly the jobs stored *before* under the keys.
        return """
            WITH input AS MATERIALIZED (
                SELECT gen_random_uuid() AS id, i.*
                FROM unnest(\(names)::text[], \(specs)::text[], \(hashes)::text[], \(priorities)::int8[], \(labels)::text[], \(keys)::text[],
                            \(bases)::text[])
                     WITH ORDINALITY AS i(name, spec, spec_hash, priority, labels, submit_key, workdir_base, ord)
            ),
            inserted AS (
                INSERT INTO jobs (id, name, spec, spec_hash, priority, labels, submit_key, workdir_base)
                SELECT id, name, spec::jsonb, spec_hash, priority, labels::jsonb, submit_key, workdir_base FROM input ORDER BY ord
                ON CONFLICT (submit_key) DO NOTHING
                RETURNING id, state, restarts, preemptions, created_at, updated_at
            ),
            submitted AS (
                INSERT INTO job_events (job_id, kind, to_state)
                SELECT id, 'submitted', state FROM inserted
            )
            SELECT input.ord, j.id, NULL::text AS name, j.state, NULL::text AS failure_reason, NULL::integer AS priority,
                   NULL::jsonb AS labels, NULL::text AS spec_hash, NULL::jsonb AS spec, j.restarts, j.preemptions,
                   NULL::text AS submit_key, j.created_at, j.updated_at, NULL::timestamptz AS finished_at, NULL::text AS target
            FROM inserted j JOIN input ON input.id = j.id
            UNION ALL
            SELECT NULL, \(unsafeSQL: recordColumns)
            FROM jobs j WHERE j.submit_key IN (SELECT submit_key FROM input WHERE submit_key IS NOT NULL)
            """
    }

    /// A job this call inserted: the database's columns from `row`, the rest from what was sent.
    static func insertedRecord(from row: PostgresRow, job: NewJob) throws -> JobRecord {
        JobRecord(
            id: try row.decode(UUID.self, column: "id"),
            name: job.name,
            state: try jobState(try row.decode(String.self, column: "state")),
            failureReason: nil,
            priority: job.priority,
            labels: job.labels,
            specHash: job.specHash,
            specJSON: job.specJSON,
            restarts: try row.decode(Int.self, column: "restarts"),
            preemptions: try row.decode(Int.self, column: "preemptions"),
            submitKey: job.submitKey,
            createdAt: try row.decode(Date.self, column: "created_at"),
            updatedAt: try row.decode(Date.self, column: "updated_at"),
            finishedAt: nil,
            target: nil)
    }

    /// Labels as JSON object text, written by the canonical writer (no `JSONEncoder` per job:
    /// that would cost more than the rest of the submission's client work together).
    static func labelsJSON(_ labels: [String: String]) -> String {
        var writer = CanonicalJSONWriter()
        writer.stringMap(labels)
        return writer.text
    }

    // MARK: Reading

    /// Jobs newest first, optionally only those in `state` and those carrying all of `labels`.
    public func list(state: JobState? = nil, labels: [String: String] = [:], limit: Int = 100) async throws -> [JobRecord] {
        let query: PostgresQuery
        // Four statements rather than `($1 IS NULL OR ...)`: an empty label filter must not reach
        // the GIN index (`@> '{}'` would scan all of it).
        switch (state, labels.isEmpty) {
        case (nil, true):
            query = "SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j ORDER BY j.created_at DESC, j.submit_seq DESC LIMIT \(limit)"
        case (let state?, true):
            query = """
                SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j WHERE j.state = \(state.rawValue)
                ORDER BY j.created_at DESC, j.submit_seq DESC LIMIT \(limit)
                """
        case (nil, false):
            query = """
                SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j WHERE j.labels @> \(PostgresJSON(labels))
                ORDER BY j.created_at DESC, j.submit_seq DESC LIMIT \(limit)
                """
        case (let state?, false):
            query = """
                SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j WHERE j.state = \(state.rawValue) AND j.labels @> \(PostgresJSON(labels))
                ORDER BY j.created_at DESC, j.submit_seq DESC LIMIT \(limit)
                """
        }
        return try await pool.query(query).map(Self.record(from:))
    }

    /// The job with this id.
    /// - Throws: ``JobLookupError/notFound(reference:)`` when there is none.
    public func job(id: UUID) async throws -> JobRecord {
        let rows = try await pool.query("SELECT \(unsafeSQL: Self.recordColumns) FROM jobs j WHERE j.id = \(id)")
        guard let row = rows.first else { throw JobLookupError.notFound(reference: id.uuidString.lowercased()) }
        return try Self.record(from: row)
    }

    /// Finds the one job a user means by `reference`, in this order:
    /// 1. a full UUID: that job;
    /// 2. a name equal to `reference`, when exactly one job has it;
    /// 3. the one job whose id text starts with `reference` (case-insensitive) or whose name does.
    ///
    /// - Throws: ``JobLookupError/notFound(reference:)`` when nothing matches,
    ///   ``JobLookupError/ambiguous(reference:candidates:more:)`` when several jobs do.
    public func resolve(_ reference: String) async throws -> JobRecord {
        if let id = UUID(uuidString: reference) {
            do {
                return try await job(id: id)
            } catch JobLookupError.notFound {
                throw JobLookupError.notFound(reference: reference)
            }
        }
        if reference.isEmpty { throw JobLookupError.notFound(reference: reference) }
        // An id prefix becomes a range of the primary key ([prefix000…, prefixfff…]: uuid order is
        // byte order, which is hex-text order); a reference that is no id prefix gets an empty range.
        let bounds = Self.uuidRange(prefix: reference)
        let rows = try await pool.query("""
            SELECT \(unsafeSQL: Self.recordColumns), j.name = \(reference) AS exact
            FROM jobs j
            WHERE j.name LIKE \(Self.likePrefixPattern(reference)) OR j.id BETWEEN \(bounds?.lower) AND \(bounds?.upper)
            ORDER BY exact DESC, j.created_at DESC, j.submit_seq DESC
            LIMIT 6
            """)
        let matches = try rows.map { row in (record: try Self.record(from: row), exact: try row.decode(Bool.self, column: "exact")) }
        guard let first = matches.first else { throw JobLookupError.notFound(reference: reference) }
        if matches.count == 1 || (first.exact && !matches[1].exact) { return first.record }
        // Several exact names: only they are candidates; else every match is.
        let group = first.exact ? matches.filter(\.exact) : matches
        let candidates = group.prefix(5).map { JobCandidate(id: $0.record.id, name: $0.record.name, state: $0.record.state, createdAt: $0.record.createdAt) }
        throw JobLookupError.ambiguous(reference: reference, candidates: Array(candidates), more: group.count > 5)
    }

    /// The job's events in the order they were written (empty for an unknown job).
    public func events(jobID: UUID) async throws -> [JobEventRecord] {
        let rows = try await pool.query("""
            SELECT id, job_id, attempt_id, at, kind, from_state, to_state, reason, message, details
            FROM job_events WHERE job_id = \(jobID) ORDER BY id
            """)
        return try rows.map { row in
            let (id, jobID, attemptID, at, kind, fromState, toState, reason, message, details) = try row.decode(
                Int64.self, UUID.self, UUID?.self, Date.self, String.self, String?.self, String?.self, String?.self, String?.self,
                String?.self)
            return JobEventRecord(
                id: id, jobID: jobID, attemptID: attemptID, at: at, kind: kind, fromState: fromState, toState: toState, reason: reason,
                message: message, detailsJSON: details)
        }
    }

    /// The database's current time, for "N minutes ago" next to times the database wrote (the
    /// host's clock may differ from the server's).
    public func databaseNow() async throws -> Date {
        try await pool.query("SELECT now()").scalar(Date.self)
    }

    // MARK: Cancel

    /// Asks for a job to be cancelled, in one short transaction holding the job's row lock:
    /// a pending job becomes `cancelled` at once (with `finished_at`); a job with an attempt that
    /// may be alive becomes `cancelling`, and the scheduler stops the attempt. Either way a
    /// `cancel_requested` event records the move. A finished or already cancelling job is left as
    /// it is, and the outcome says so.
    ///
    /// `failure_reason` is not set (a cancel is not a failure); the event's reason says
    /// `cancelled_by_user` where the state machine gives one.
    /// - Throws: ``JobLookupError/notFound(reference:)`` for an unknown id.
    public func cancel(jobID: UUID) async throws -> CancelOutcome {
        try await pool.withTransaction { connection in
            let rows = try await connection.query("SELECT state FROM jobs WHERE id = \(jobID) FOR UPDATE")
            guard let row = rows.first else { throw JobLookupError.notFound(reference: jobID.uuidString.lowercased()) }
            let state = try Self.jobState(try row.decode(String.self, at: 0))
            switch Self.cancelDecision(for: state) {
            case .failure(let rejection):
                let verdict: CancelOutcome.Verdict = state.isTerminal ? .alreadyFinished : state == .cancelling ? .alreadyCancelling : .refused
                return CancelOutcome(from: state, to: state, verdict: verdict, message: rejection.why)
            case .success(let transition):
                try await connection.query("""
                    WITH moved AS (
                        UPDATE jobs
                        SET state = \(transition.to.rawValue),
                            finished_at = CASE WHEN \(transition.to.isTerminal) THEN now() END
                        WHERE id = \(jobID)
                        RETURNING id
                    )
                    INSERT INTO job_events (job_id, kind, from_state, to_state, reason)
                    SELECT id, \(transition.event.name), \(transition.from.rawValue), \(transition.to.rawValue), \(transition.reason?.rawValue)
                    FROM moved
                    """)
                try await connection.query(Self.wakeSchedulers)
                return CancelOutcome(
                    from: transition.from, to: transition.to, verdict: .moved, message: "\(transition.from.rawValue) → \(transition.to.rawValue)")
            }
        }
    }

    // MARK: Migrate

    /// Asks for a job to move to `target`: the job becomes `migrating` with a `migrate_requested`
    /// event, and the scheduler holding it asks the running attempt for a checkpoint (within
    /// `grace`; zero stops it at once), stops it, makes the newest checkpoint consistent on `target`
    /// (only missing files move) and launches there. A job that is not running or waiting for a
    /// placement is left as it is, and the outcome says why.
    /// - Parameter grace: how long the attempt gets to checkpoint and stop; nil: the scheduler's own.
    public func migrate(jobID: UUID, to target: String, grace: Duration?, by requester: MigrationRequester = .user) async throws -> CancelOutcome {
        let seconds = grace.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        return try await pool.withTransaction { connection in
            let rows = try await connection.query("SELECT state FROM jobs WHERE id = \(jobID) FOR UPDATE")
            guard let row = rows.first else { throw JobLookupError.notFound(reference: jobID.uuidString.lowercased()) }
            let state = try Self.jobState(try row.decode(String.self, at: 0))
            switch JobStateMachine.transition(from: state, on: .migrateRequested(by: requester)) {
            case .failure(let rejection):
                return CancelOutcome(from: state, to: state, verdict: state.isTerminal ? .alreadyFinished : .refused, message: rejection.why)
            case .success(let transition):
                let details = JSONValue.object(["to": .string(target), "grace_seconds": seconds.map(JSONValue.double) ?? .null,
                                                "requested_by": .string(requester.rawValue)]).canonicalText
                try await connection.query("""
                    WITH moved AS (
                        UPDATE jobs SET state = \(transition.to.rawValue), migrate_to = \(target), stop_grace_seconds = \(seconds)
                        WHERE id = \(jobID)
                        RETURNING id
                    )
                    INSERT INTO job_events (job_id, kind, from_state, to_state, message, details)
                    SELECT id, \(transition.event.name), \(transition.from.rawValue), \(transition.to.rawValue),
                           \("move to \(target) asked by \(requester.rawValue)" + (seconds.map { $0 == 0 ? ", now" : String(format: ", %.0fs to checkpoint", $0) } ?? "")),
                           \(details)::jsonb
                    FROM moved
                    """)
                try await connection.query(Self.wakeSchedulers)
                return CancelOutcome(from: transition.from, to: transition.to, verdict: .moved, message: "\(transition.from.rawValue) → \(transition.to.rawValue)")
            }
        }
    }

    /// The channel schedulers listen on: a submission, a cancel or a move notifies it, so a
    /// scheduler acts at once instead of at its next poll.
    public static let schedulerChannel = "tern_jobs"

    /// `NOTIFY tern_jobs`, as a statement of the transaction that made the change.
    static let wakeSchedulers: PostgresQuery = "SELECT pg_notify(\(schedulerChannel), '')"

    /// Where a cancel request takes a job in `state`: the shared job state machine decides, so the
    /// CLI and the scheduler agree (pending → cancelled; starting, running, recovering, migrating →
    /// cancelling; terminal and cancelling refused).
    static func cancelDecision(for state: JobState) -> Result<JobTransition, TransitionRejection> {
        JobStateMachine.transition(from: state, on: .cancelRequested)
    }

    // MARK: Rows

    /// The columns ``record(from:)`` reads, over `jobs j`, with the latest attempt's target (the
    /// `(job_id, number)` unique index answers the subquery).
    static let recordColumns = """
        j.id, j.name, j.state, j.failure_reason, j.priority, j.labels, j.spec_hash, j.spec, j.restarts, j.preemptions,
        j.submit_key, j.created_at, j.updated_at, j.finished_at,
        (SELECT a.target FROM attempts a WHERE a.job_id = j.id ORDER BY a.number DESC LIMIT 1) AS target
        """

    static func record(from row: PostgresRow) throws -> JobRecord {
        JobRecord(
            id: try row.decode(UUID.self, column: "id"),
            name: try row.decode(String.self, column: "name"),
            state: try jobState(try row.decode(String.self, column: "state")),
            failureReason: try row.decode(String?.self, column: "failure_reason"),
            priority: try row.decode(Int.self, column: "priority"),
            labels: try row.decode(PostgresJSON<[String: String]>.self, column: "labels").value,
            specHash: try row.decode(String.self, column: "spec_hash"),
            specJSON: try row.decode(String.self, column: "spec"),
            restarts: try row.decode(Int.self, column: "restarts"),
            preemptions: try row.decode(Int.self, column: "preemptions"),
            submitKey: try row.decode(String?.self, column: "submit_key"),
            createdAt: try row.decode(Date.self, column: "created_at"),
            updatedAt: try row.decode(Date.self, column: "updated_at"),
            finishedAt: try row.decode(Date?.self, column: "finished_at"),
            target: try row.decode(String?.self, column: "target"))
    }

    static func jobState(_ text: String) throws -> JobState {
        guard let state = JobState(rawValue: text) else {
            throw JobRepositoryError("the database holds job state \"\(text)\", which this version of Tern does not know")
        }
        return state
    }

    /// `LIKE` pattern matching names that start with `prefix`: `\`, `%` and `_` escaped with `\`
    /// (LIKE's default escape character), so they match themselves.
    static func likePrefixPattern(_ prefix: String) -> String {
        var pattern = ""
        for character in prefix {
            if character == "\\" || character == "%" || character == "_" { pattern.append("\\") }
            pattern.append(character)
        }
        return pattern + "%"
    }

    /// The smallest and largest UUIDs whose text starts with `prefix` (case-insensitive), or nil when
    /// `prefix` is not the beginning of a UUID's text (`8-4-4-4-12` hex digits) or is a whole one.
    static func uuidRange(prefix: String) -> (lower: UUID, upper: UUID)? {
        let layout = Array("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
        let given = Array(prefix.lowercased())
        guard !given.isEmpty, given.count < layout.count else { return nil }
        for (character, slot) in zip(given, layout) {
            if slot == "-" {
                guard character == "-" else { return nil }
            } else {
                guard character.isASCII, character.isHexDigit else { return nil }
            }
        }
        var lower = String(given)
        var upper = String(given)
        for slot in layout[given.count...] {
            lower.append(slot == "-" ? "-" : "0")
            upper.append(slot == "-" ? "-" : "f")
        }
        guard let low = UUID(uuidString: lower), let high = UUID(uuidString: upper) else { return nil }
        return (low, high)
    }
}
