import Foundation
@testable import TernControl
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// A fresh database with the repository's own migrations applied.
enum ControlDatabase {
    /// `migrations/` at the repository root, found from this file's path.
    static let migrationsDirectory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // JobRepositoryTests.swift, TernControlTests, Tests
        return url.appendingPathComponent("migrations").path
    }()

    static func migratedPool(maxConnections: Int = 4) async throws -> PostgresPool {
        let pool = try await TestDatabase.freshPool(maxConnections: maxConnections)
        try await MigrationRunner(pool: pool, migrations: try Migration.load(directory: migrationsDirectory)).migrate()
        return pool
    }
}

/// A job for tests: the spec is small JSON and the hash a well-formed stand-in (the repository
/// stores hashes, it does not compute them).
func sampleJob(_ name: String, number: Int = 0, priority: Int = 0, labels: [String: String] = [:], submitKey: String? = nil) -> NewJob {
    NewJob(
        name: name, specJSON: #"{"name":"\#(name)","nodes":1,"run":"echo \#(number)"}"#,
        specHash: String(repeating: "0", count: 48) + String(format: "%016x", number), priority: priority, labels: labels,
        submitKey: submitKey)
}

@Suite struct JobRepositoryTests {
    @Test func submitStoresPendingJobsInInputOrderWithASubmittedEvent() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let input = [
            sampleJob("train-a", number: 1, priority: 5, labels: ["team": "nlp", "size": "8b"]),
            sampleJob("train-b", number: 2, labels: ["team": "vision"]),
            sampleJob("eval", number: 3, labels: ["team": "nlp"], submitKey: "client-key-1"),
        ]
        let stored = try await jobs.submit(input)
        #expect(stored.map(\.name) == ["train-a", "train-b", "eval"])
        #expect(Set(stored.map(\.id)).count == 3)
        #expect(stored.allSatisfy { $0.state == .pending && $0.failureReason == nil && $0.finishedAt == nil && $0.target == nil })
        #expect(stored.map(\.priority) == [5, 0, 0])
        #expect(stored[0].labels == ["team": "nlp", "size": "8b"])
        #expect(stored.map(\.specHash) == input.map(\.specHash))
        #expect(stored[2].submitKey == "client-key-1")
        // The spec comes back as the same JSON value (jsonb may print it differently).
        let spec = try JSONSerialization.jsonObject(with: Data(stored[0].specJSON.utf8)) as? [String: Any]
        #expect(spec?["name"] as? String == "train-a")
        #expect(spec?["nodes"] as? Int == 1)
        // One submission is one transaction: one database time for all.
        #expect(Set(stored.map(\.createdAt)).count == 1)

        for job in stored {
            let events = try await jobs.events(jobID: job.id)
            #expect(events.count == 1)
            #expect(events.first?.kind == "submitted")
            #expect(events.first?.fromState == nil)
            #expect(events.first?.toState == "pending")
        }
        #expect(try await jobs.submit([]).isEmpty)
    }

    @Test func listIsNewestFirstAndFiltersByStateAndLabels() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let first = try await jobs.submit([sampleJob("a", labels: ["team": "nlp"]), sampleJob("b", labels: ["team": "vision"])])
        let second = try await jobs.submit([sampleJob("c", labels: ["team": "nlp", "tier": "gold"])])
        // Newest submission first; within one submission, the later job first.
        #expect(try await jobs.list().map(\.name) == ["c", "b", "a"])
        #expect(try await jobs.list(limit: 2).map(\.name) == ["c", "b"])
        #expect(try await jobs.list(labels: ["team": "nlp"]).map(\.name) == ["c", "a"])
        #expect(try await jobs.list(labels: ["team": "nlp", "tier": "gold"]).map(\.id) == [second[0].id])
        #expect(try await jobs.list(labels: ["team": "none"]).isEmpty)

        try await pool.query("UPDATE jobs SET state = 'running' WHERE id = \(first[1].id)")
        #expect(try await jobs.list(state: .running).map(\.name) == ["b"])
        #expect(try await jobs.list(state: .pending).map(\.name) == ["c", "a"])
        #expect(try await jobs.list(state: .running, labels: ["team": "nlp"]).isEmpty)
        #expect(try await jobs.list(state: .pending, labels: ["team": "nlp"]).map(\.name) == ["c", "a"])
    }

    @Test func resolveFindsByIdIdPrefixAndNamePrefix() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let stored = try await jobs.submit([
            sampleJob("train"), sampleJob("train-2"), sampleJob("train-3"), sampleJob("eval_100%"), sampleJob("evalX100Y"),
        ])
        let (train, train2, _, percent, lookalike) = (stored[0], stored[1], stored[2], stored[3], stored[4])

        // A full id, in either case.
        #expect(try await jobs.resolve(train2.id.uuidString).id == train2.id)
        #expect(try await jobs.resolve(train2.id.uuidString.lowercased()).id == train2.id)
        // A unique prefix of the id text (12 hex digits and a dash: a collision is practically impossible).
        let idText = percent.id.uuidString.lowercased()
        #expect(try await jobs.resolve(String(idText.prefix(13))).id == percent.id)
        #expect(try await jobs.resolve(String(idText.prefix(10)).uppercased()).id == percent.id)
        // A unique name prefix.
        #expect(try await jobs.resolve("train-2").id == train2.id)
        #expect(try await jobs.resolve("evalX").id == lookalike.id)
        // An exact name wins over names it is a prefix of.
        #expect(try await jobs.resolve("train").id == train.id)
        // `_` and `%` are literal characters, not LIKE wildcards.
        #expect(try await jobs.resolve("eval_").id == percent.id)
        #expect(try await jobs.resolve("eval_100%").id == percent.id)
        await #expect(throws: JobLookupError.notFound(reference: "eval%")) { try await jobs.resolve("eval%") }
        await #expect(throws: JobLookupError.notFound(reference: "%")) { try await jobs.resolve("%") }

        // Several matches: the error names them, newest first.
        let ambiguous = await #expect(throws: JobLookupError.self) { try await jobs.resolve("train-") }
        guard case .ambiguous(let reference, let candidates, let more)? = ambiguous else {
            Issue.record("expected an ambiguity, got \(String(describing: ambiguous))")
            return
        }
        #expect(reference == "train-")
        #expect(Set(candidates.map(\.name)) == ["train-2", "train-3"])
        #expect(!more)
        #expect(ambiguous?.description.contains(train2.id.uuidString.lowercased()) == true)
        let evals = await #expect(throws: JobLookupError.self) { try await jobs.resolve("eval") }
        if case .ambiguous(_, let candidates, _)? = evals {
            #expect(Set(candidates.map(\.id)) == [percent.id, lookalike.id])
        } else {
            Issue.record("expected an ambiguity, got \(String(describing: evals))")
        }

        // Not found: an unknown name, an unknown full id, an empty reference.
        await #expect(throws: JobLookupError.notFound(reference: "nope")) { try await jobs.resolve("nope") }
        let unknown = UUID().uuidString
        await #expect(throws: JobLookupError.notFound(reference: unknown)) { try await jobs.resolve(unknown) }
        await #expect(throws: JobLookupError.notFound(reference: "")) { try await jobs.resolve("") }
    }

    @Test func ambiguityListsAtMostFiveCandidates() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        _ = try await jobs.submit((1...7).map { sampleJob("sweep", number: $0) })
        let error = await #expect(throws: JobLookupError.self) { try await jobs.resolve("sweep") }
        guard case .ambiguous(_, let candidates, let more)? = error else {
            Issue.record("expected an ambiguity, got \(String(describing: error))")
            return
        }
        #expect(candidates.count == 5)
        #expect(more)
        #expect(error?.description.contains("… and more") == true)
    }

    @Test func uuidRangeCoversExactlyThePrefix() {
        let range = JobRepository.uuidRange(prefix: "1A2b3c4d-5")
        #expect(range?.lower.uuidString.lowercased() == "1a2b3c4d-5000-0000-0000-000000000000")
        #expect(range?.upper.uuidString.lowercased() == "1a2b3c4d-5fff-ffff-ffff-ffffffffffff")
        #expect(JobRepository.uuidRange(prefix: "1a2b3c4d5") == nil)  // a dash belongs after 8 digits
        #expect(JobRepository.uuidRange(prefix: "train") == nil)
        #expect(JobRepository.uuidRange(prefix: "") == nil)
        #expect(JobRepository.likePrefixPattern(#"a_b%c\d"#) == #"a\_b\%c\\d%"#)
    }

    @Test func cancelMovesPendingToCancelledAndLiveJobsToCancelling() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let stored = try await jobs.submit([sampleJob("pending"), sampleJob("running"), sampleJob("done"), sampleJob("recovering")])
        let (pending, running, done, recovering) = (stored[0], stored[1], stored[2], stored[3])

        // Pending: cancelled at once, finished, no failure reason.
        let cancelOutcome = try await jobs.cancel(jobID: pending.id)
        #expect(cancelOutcome == CancelOutcome(from: .pending, to: .cancelled, verdict: .moved, message: "pending → cancelled"))
        #expect(cancelOutcome.changed)
        let cancelled = try await jobs.resolve(pending.id.uuidString)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.finishedAt != nil)
        #expect(cancelled.failureReason == nil)
        let again = try await jobs.cancel(jobID: pending.id)
        #expect(again.verdict == .alreadyFinished)
        #expect(again.from == .cancelled && again.to == .cancelled && !again.changed)
        #expect(again.message == "it was already cancelled")

        // Running (set up directly): cancelling, not finished; a second cancel writes nothing.
        try await pool.query("UPDATE jobs SET state = 'running' WHERE id = \(running.id)")
        let toCancelling = try await jobs.cancel(jobID: running.id)
        #expect((toCancelling.from, toCancelling.to, toCancelling.verdict) == (.running, .cancelling, .moved))
        let cancelling = try await jobs.job(id: running.id)
        #expect(cancelling.state == .cancelling)
        #expect(cancelling.finishedAt == nil)
        let repeated = try await jobs.cancel(jobID: running.id)
        #expect((repeated.from, repeated.to, repeated.verdict, repeated.changed) == (.cancelling, .cancelling, .alreadyCancelling, false))

        try await pool.query("UPDATE jobs SET state = 'recovering' WHERE id = \(recovering.id)")
        let fromRecovering = try await jobs.cancel(jobID: recovering.id)
        #expect((fromRecovering.from, fromRecovering.to, fromRecovering.verdict) == (.recovering, .cancelling, .moved))

        // Terminal: refused without a write.
        try await pool.query("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = \(done.id)")
        let outcome = try await jobs.cancel(jobID: done.id)
        #expect(outcome.verdict == .alreadyFinished)
        #expect(outcome.to == .succeeded)
        #expect(outcome.message == "it already succeeded")
        #expect(!outcome.changed)
        #expect(try await jobs.job(id: done.id).state == .succeeded)

        await #expect(throws: JobLookupError.self) { try await jobs.cancel(jobID: UUID()) }

        // Events: what moved, in order; refused cancels left no trace.
        let pendingEvents = try await jobs.events(jobID: pending.id)
        #expect(pendingEvents.map(\.kind) == ["submitted", "cancel_requested"])
        #expect(pendingEvents[1].fromState == "pending")
        #expect(pendingEvents[1].toState == "cancelled")
        #expect(pendingEvents[1].reason == FailureReason.cancelledByUser.rawValue)
        #expect(pendingEvents[0].id < pendingEvents[1].id)
        let runningEvents = try await jobs.events(jobID: running.id)
        #expect(runningEvents.map(\.kind) == ["submitted", "cancel_requested"])
        #expect(runningEvents[1].fromState == "running")
        #expect(runningEvents[1].toState == "cancelling")
        #expect(try await jobs.events(jobID: done.id).map(\.kind) == ["submitted"])
        #expect(try await jobs.events(jobID: UUID()).isEmpty)
    }

    @Test func aThousandConcurrentSubmissionsAreEachStoredOnce() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 8)
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let count = 1000
        let ids = try await withThrowingTaskGroup(of: (Int, UUID).self) { group in
            for number in 0..<count {
                group.addTask {
                    let stored = try await jobs.submit([sampleJob("job-\(number)", number: number)])
                    #expect(stored.count == 1)
                    #expect(stored.first?.name == "job-\(number)")
                    return (number, stored[0].id)
                }
            }
            return try await group.reduce(into: [Int: UUID]()) { $0[$1.0] = $1.1 }
        }
        #expect(ids.count == count)
        #expect(Set(ids.values).count == count)
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == count)
        #expect(try await pool.query("SELECT count(DISTINCT id) FROM jobs").scalar(Int.self) == count)
        #expect(try await pool.query("SELECT count(DISTINCT name) FROM jobs").scalar(Int.self) == count)
        #expect(try await pool.query("SELECT count(*) FROM job_events WHERE kind = 'submitted'").scalar(Int.self) == count)
        #expect(try await pool.query("""
            SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.kind = 'submitted') <> 1
            """).scalar(Int.self) == 0)
        // Each task got back the row stored for its own job.
        let stored = try await pool.query("SELECT id, name FROM jobs")
        for row in stored {
            let (id, name) = try row.decode(UUID.self, String.self)
            #expect(ids[Int(name.dropFirst("job-".count))!] == id)
        }
    }

    @Test func aSubmitKeyIsStoredOnceEvenUnderConcurrency() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 8)
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        // Two submissions of one key at the same time, many times over (each round a new key).
        for round in 0..<20 {
            let key = "retry-\(round)"
            async let first = jobs.submit([sampleJob("twin-a-\(round)", submitKey: key)])
            async let second = jobs.submit([sampleJob("twin-b-\(round)", submitKey: key)])
            let (a, b) = try await (first, second)
            #expect(a[0].id == b[0].id)
            #expect(a[0].submitKey == key)
        }
        // Many at once on one key.
        let many = try await withThrowingTaskGroup(of: UUID.self) { group in
            for number in 0..<32 {
                group.addTask { try await jobs.submit([sampleJob("herd-\(number)", submitKey: "herd")])[0].id }
            }
            return try await group.reduce(into: Set<UUID>()) { $0.insert($1) }
        }
        #expect(many.count == 1)
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 21)
        #expect(try await pool.query("SELECT count(*) FROM job_events").scalar(Int.self) == 21)
    }

    @Test func submissionsSharingKeysInOppositeOrdersBothSucceed() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 4)
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        // Opposite orders make the two transactions wait on each other's keys (a deadlock the
        // server breaks by aborting one); the aborted one is sent again and finds the stored jobs.
        for round in 0..<4 {
            let keys = (0..<300).map { "crossed-\(round)-\($0)" }
            async let forward = jobs.submit(keys.map { sampleJob("f-\($0)", submitKey: $0) })
            async let backward = jobs.submit(keys.reversed().map { sampleJob("b-\($0)", submitKey: $0) })
            let (f, b) = try await (forward, backward)
            #expect(f.map(\.id) == b.reversed().map(\.id))
            #expect(f.map(\.submitKey) == keys)
        }
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 1200)
        #expect(try await pool.query("SELECT count(*) FROM job_events").scalar(Int.self) == 1200)
    }

    @Test func labelsWithAwkwardCharactersRoundTrip() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let labels = ["quote\"d": "back\\slash", "line": "one\ntwo\tthree\u{1}", "ünï": "日本語 🚀", "empty": ""]
        let stored = try await jobs.submit([sampleJob("awkward", labels: labels)])
        #expect(stored[0].labels == labels)
        #expect(try await jobs.list().first?.labels == labels)
        #expect(try await jobs.list(labels: ["ünï": "日本語 🚀"]).map(\.id) == [stored[0].id])
        #expect(JobRepository.labelsJSON(["b": "2", "a": "\""]) == #"{"a":"\"","b":"2"}"#)
    }

    @Test func aRepeatedSubmitKeyReturnsTheStoredJob() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let original = try await jobs.submit([sampleJob("original", submitKey: "k1")])[0]
        _ = try await jobs.cancel(jobID: original.id)
        // Retried later with other contents: the stored job as it is now comes back, nothing is written.
        let again = try await jobs.submit([sampleJob("fresh"), sampleJob("retried", submitKey: "k1"), sampleJob("dup", submitKey: "k2"), sampleJob("dup-again", submitKey: "k2")])
        #expect(again.map(\.name) == ["fresh", "original", "dup", "dup"])
        #expect(again[1].id == original.id)
        #expect(again[1].state == .cancelled)
        #expect(again[2].id == again[3].id)
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 3)
        #expect(try await jobs.events(jobID: original.id).map(\.kind) == ["submitted", "cancel_requested"])
    }

    @Test func aLargeSubmissionIsPipelinedAndKeepsItsOrder() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool, submitBatchSize: 400)
        let input = (0..<1500).map { sampleJob("bulk-\($0)", number: $0, labels: ["i": "\($0)"], submitKey: $0 % 3 == 0 ? "bulk-key-\($0 % 600)" : nil) }
        let stored = try await jobs.submit(input)
        #expect(stored.count == input.count)
        // Keys repeat across batches (0 and 600 share one): the later ones return the first.
        for (index, record) in stored.enumerated() {
            if index % 3 == 0, index >= 600 {
                #expect(record.name == "bulk-\(index % 600)")
            } else {
                #expect(record.name == "bulk-\(index)")
            }
        }
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 1200)  // 1000 without a key, 200 distinct keys
        // A failing batch rolls every batch back: one transaction.
        var bad = (0..<900).map { sampleJob("atomic-\($0)", number: $0) }
        bad[850].specHash = "not-a-hash"
        await #expect(throws: PostgresError.self) { try await jobs.submit(bad) }
        #expect(try await pool.query("SELECT count(*) FROM jobs WHERE name LIKE 'atomic-%'").scalar(Int.self) == 0)
    }

    @Test func jobEventsAreAppendOnly() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let job = try await jobs.submit([sampleJob("ledger")])[0]
        for statement: PostgresQuery in [
            "UPDATE job_events SET message = 'rewritten'",
            "DELETE FROM job_events",
            "TRUNCATE job_events",
        ] {
            let error = await #expect(throws: PostgresError.self) { try await pool.query(statement) }
            #expect(error?.sqlState == "23001")
            #expect(error?.message.contains("append-only") == true)
        }
        // A job with events cannot be deleted from under them either.
        await #expect(throws: PostgresError.self) { try await pool.query("DELETE FROM jobs WHERE id = \(job.id)") }
        #expect(try await jobs.events(jobID: job.id).map(\.kind) == ["submitted"])
    }

    @Test func theSchemaRefusesInconsistentRows() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let job = try await jobs.submit([sampleJob("checked")])[0]
        let refused: [PostgresQuery] = [
            "UPDATE jobs SET state = 'exploded' WHERE id = \(job.id)",
            // Terminal without finished_at, and finished_at on a live job.
            "UPDATE jobs SET state = 'failed' WHERE id = \(job.id)",
            "UPDATE jobs SET finished_at = now() WHERE id = \(job.id)",
            "UPDATE jobs SET labels = '{\"n\": 1}' WHERE id = \(job.id)",
        ]
        for statement in refused {
            await #expect(throws: PostgresError.self) { try await pool.query(statement) }
        }
        await #expect(throws: PostgresError.self) { try await jobs.submit([sampleJob("no-key", submitKey: "")]) }
        // updated_at follows writes.
        try await pool.query("UPDATE jobs SET priority = 3 WHERE id = \(job.id)")
        let after = try await jobs.job(id: job.id)
        #expect(after.updatedAt >= job.updatedAt)
        #expect(after.priority == 3)
    }

    @Test func theLatestAttemptsTargetIsReported() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        try await TargetRepository(pool: pool).apply(TargetRepositoryTests.definitions("""
            targets:
              local-a: {kind: local, storage: "file:///tmp/a"}
              local-b: {kind: local, storage: "file:///tmp/b"}
            """))
        let job = try await jobs.submit([sampleJob("placed")])[0]
        try await pool.query("""
            INSERT INTO attempts (job_id, number, idempotency_key, target, state, ended_at)
            VALUES (\(job.id), 1, 'k-1', 'local-a', 'preempted', now())
            """)
        try await pool.query("INSERT INTO attempts (job_id, number, idempotency_key, target) VALUES (\(job.id), 2, 'k-2', 'local-b')")
        #expect(try await jobs.job(id: job.id).target == "local-b")
        #expect(try await jobs.list().first?.target == "local-b")
        // Never two live attempts for one job.
        await #expect(throws: PostgresError.self) {
            try await pool.query("INSERT INTO attempts (job_id, number, idempotency_key, target) VALUES (\(job.id), 3, 'k-3', 'local-a')")
        }
        // An event's attempt must belong to the event's job.
        let other = try await jobs.submit([sampleJob("other")])[0]
        let attempt = try await pool.query("SELECT id FROM attempts WHERE number = 2").scalar(UUID.self)
        await #expect(throws: PostgresError.self) {
            try await pool.query("INSERT INTO job_events (job_id, attempt_id, kind) VALUES (\(other.id), \(attempt), 'x')")
        }
        try await pool.query("INSERT INTO job_events (job_id, attempt_id, kind) VALUES (\(job.id), \(attempt), 'attempt_launched')")
        #expect(try await jobs.events(jobID: job.id).last?.attemptID == attempt)
    }
}

@Suite(.serialized) struct JobSubmitThroughputTests {
    /// A spec of realistic size (about 700 bytes of canonical JSON).
    static func realisticJob(_ number: Int) -> NewJob {
        let spec = #"{"checkpoint":{"dir":"checkpoints","format":"auto","keep":3,"replicate_to":["aws-us-east-1","gcp-us-central1"]},"env":{"WANDB_PROJECT":"lora"},"image":"nvcr.io/nvidia/pytorch:24.10-py3","labels":{"team":"nlp"},"name":"sweep-\#(number)","nodes":2,"placement":{"max_hourly_cost":120,"strategy":"cheapest","targets":["aws-us-east-1","gcp-us-central1","onprem-slurm"]},"priority":10,"recovery":{"max_restarts_on_errors":2,"on_preemption":"failover","recover_on_exit_codes":[75]},"resources":{"accelerators":{"mode":"any","requests":[{"count":8,"name":"H100"}]},"cpus":"32+","disk":"500GB","memory":"256GB+","spot":"auto"},"run":"torchrun --nnodes=$TERN_NUM_NODES train.py --lr 0.000\#(number % 10)","secrets":["HF_TOKEN"],"setup":"pip install -r requirements.txt","timeout":"72h","workdir":"."}"#
        return NewJob(
            name: "sweep-\(number)", specJSON: spec, specHash: String(repeating: "a", count: 48) + String(format: "%016x", number),
            priority: 10, labels: ["team": "nlp", "sweep": "lr"])
    }

    /// 10,000 jobs from one process in one call: every job stored once, in order, with its event.
    /// The rate is printed for comparison with pgbench inserting the same rows.
    @Test func tenThousandJobsInOneSubmission() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let input = (0..<10_000).map(Self.realisticJob)
        let clock = ContinuousClock()
        let started = clock.now
        let stored = try await jobs.submit(input)
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("submitted \(input.count) jobs in \(String(format: "%.3f", seconds)) s: \(Int(Double(input.count) / seconds)) jobs/s")
        #expect(stored.map(\.name) == input.map(\.name))
        #expect(Set(stored.map(\.id)).count == input.count)
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == input.count)
        #expect(try await pool.query("SELECT count(*) FROM job_events WHERE kind = 'submitted'").scalar(Int.self) == input.count)
    }

    /// The same 10,000 jobs split across 8 concurrent calls (no longer all-or-nothing as a whole).
    @Test func tenThousandJobsFromEightTasks() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 8)
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let input = (0..<10_000).map(Self.realisticJob)
        let clock = ContinuousClock()
        let started = clock.now
        let count = try await withThrowingTaskGroup(of: Int.self) { group in
            for part in 0..<8 {
                let slice = Array(input[(part * 1250)..<((part + 1) * 1250)])
                group.addTask { try await jobs.submit(slice).count }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("submitted \(count) jobs from 8 tasks in \(String(format: "%.3f", seconds)) s: \(Int(Double(count) / seconds)) jobs/s")
        #expect(count == input.count)
        #expect(try await pool.query("SELECT count(DISTINCT id) FROM jobs").scalar(Int.self) == input.count)
    }
}
