import Foundation
@testable import TernControl
import TernCheckpoints
import TernExecutors
import TernModel
import TernPostgres
import TernStorage
import TernTestSupport
import Testing

/// Shifting work between targets (issue 7): failover after a preemption, `tern migrate`, a damaged
/// copy never resumed from, capacity blocks. Real everything: PostgreSQL, processes, moto (S3, with
/// signature checking), fake-gcs-server, a single-host Slurm.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ShiftingTests {
    /// The trainer, slow enough to be caught between checkpoints.
    static func trainer(steps: Int = 40, every: Int = 10, delay: Double = 0.05, targets: [String], replicateTo: [String] = [],
                        attemptOne: String? = nil) -> String {
        let train = #"python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --resume-from "$TERN_RESUME_FROM""#
        let run = attemptOne.map { "if [ \"$TERN_ATTEMPT\" = 1 ]; then \($0); else \(train); fi" } ?? train
        return """
            name: shifty
            env: {TRAINER_STEPS: \(steps), TRAINER_CHECKPOINT_EVERY: \(every), TRAINER_STEP_DELAY: \(delay), TRAINER_MODEL_MB: 1}
            run: '\(run.replacingOccurrences(of: "'", with: "''"))'
            checkpoint: {format: marker, replicate_to: [\(replicateTo.joined(separator: ", "))]}
            placement: {targets: [\(targets.joined(separator: ", "))], strategy: ordered}
            """
    }

    /// An AWS shared credentials file with moto's IAM user (the target names it; nothing in the database).
    static func credentialsFile(_ moto: TestMoto, in directory: String) throws -> String {
        let path = directory + "/aws-credentials"
        try "[default]\naws_access_key_id = \(moto.accessKeyID)\naws_secret_access_key = \(moto.secretAccessKey)\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func finalCheckpoint(_ harness: SchedulerHarness, job: UUID, step: Int64) async throws -> String {
        let checkpoints = try await CheckpointRepository(pool: harness.pool).list(job: job)
        return try #require(checkpoints.first { $0.step == step }?.checkpointID)
    }

    @Test("preempted on a file-store target: fails over to an S3 target (moto), resumes from the checkpoint moved there, ends bit-identical")
    func failoverToS3() async throws {
        let harness = try await SchedulerHarness.make(label: "failover")
        defer { Task { await harness.close() } }
        let moto = try await TestMoto.shared.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(16))"
        try await moto.createBucket(bucket)
        let credentials = try Self.credentialsFile(moto, in: harness.home)
        try await TargetRepository(pool: harness.pool).apply([
            TargetDefinition(name: "local-a", kind: .local, region: nil, storage: "file://\(harness.home)/stores/a", accelerators: [], maxNodes: 2,
                             spot: false, settings: [:], credentialsFile: nil, labels: [:]),
            TargetDefinition(name: "cloud-b", kind: .local, region: "us-east-1", storage: "s3://\(bucket)/ckpt", accelerators: [], maxNodes: 2,
                             spot: true, settings: [:], credentialsFile: credentials, labels: [:], storageEndpoint: moto.endpoint),
        ])
        let job = try #require(try await harness.submit(Self.trainer(steps: 40, every: 10, delay: 0.1, targets: ["local-a", "cloud-b"])).first)
        let scheduler = harness.scheduler()
        let running = Task { try await harness.drain(scheduler) }
        try await harness.wait("a checkpoint committed on local-a") { try await !harness.committedSteps(job: job.id, target: "local-a").isEmpty }
        try await harness.preempt(job: job.id, target: "local-a")
        scheduler.wake()
        try await running.value

        #expect(try await harness.job(job.id).state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        #expect(attempts.map(\.state) == [.preempted, .succeeded])
        #expect(attempts.map(\.target) == ["local-a", "cloud-b"])
        let resumed = try #require(attempts[1].resumeCheckpoint)
        // It resumed from a checkpoint attempt 1 wrote, now committed on S3 too.
        let written = try await CheckpointRepository(pool: harness.pool).list(job: job.id)
        #expect(written.contains { $0.checkpointID == resumed && $0.attemptID == attempts[0].id })
        let events = try await harness.events(job.id)
        let moved = try #require(events.first { $0.kind == "checkpoint_replicated" })
        #expect(moved.message?.contains("cloud-b") ?? false)
        #expect(events.contains { $0.kind == "attempt_interrupted" && $0.reason == "preempted" })
        let log = try await harness.localLog(job: job.id, attempt: 2, target: "cloud-b")
        #expect(log.contains("every chunk verified"))

        // Bit-identical: the resumed run's step 40 is the straight run's.
        let straight = try harness.straightRun(steps: 40, every: 10)
        let sealed = try await CheckpointSealer().seal(directory: straight, format: .marker)
        #expect(try await Self.finalCheckpoint(harness, job: job.id, step: 40) == sealed.id)
    }

    @Test("a copy that fails verification on the destination is demoted and never resumed from; the job resumes elsewhere from the good copy")
    func corruptReplicaIsNeverResumedFrom() async throws {
        let harness = try await SchedulerHarness.make(label: "corrupt")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local-a", "local-b"])
        // Attempt 1 writes step 10 and waits; its checkpoint is pre-replicated to local-b.
        let job = try #require(try await harness.submit(Self.trainer(
            steps: 30, every: 10, delay: 0, targets: ["local-a", "local-b"], replicateTo: ["local-b"],
            attemptOne: #"python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --stop-after-step 10 && sleep 300"#)).first)
        let scheduler = harness.scheduler()
        let running = Task { try await harness.drain(scheduler) }
        try await harness.wait("step 10 pre-replicated to local-b") { try await harness.committedSteps(job: job.id, target: "local-b") == [10] }
        // Damage one byte of a weight shard's object on local-b's store, behind Tern's back.
        let step10 = try await Self.finalCheckpoint(harness, job: job.id, step: 10)
        let stored = try await CheckpointRepository(pool: harness.pool).checkpoint(reference: step10)
        let shard = try #require(stored.manifest.files.first { $0.path.hasPrefix("model-") })
        let blob = "\(harness.home)/stores/local-b/\(StoreLayout.blob(root: shard.root))"
        let handle = try #require(FileHandle(forUpdatingAtPath: blob))
        try handle.seek(toOffset: 100)
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([byte ^ 0xFF]))
        try handle.close()

        try await harness.preempt(job: job.id, target: "local-a")
        scheduler.wake()
        try await running.value

        #expect(try await harness.job(job.id).state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        // local-b was tried with the damaged copy: the restore refused it before the job started.
        #expect(attempts.map(\.state) == [.preempted, .lost, .succeeded])
        #expect(attempts.map(\.target) == ["local-a", "local-b", "local-a"])
        #expect(attempts[1].endReason == "restore_failed")
        #expect(attempts[2].resumeCheckpoint == step10)
        // The damaged copy was demoted; pre-replication may have made a good one since, which then
        // reads back byte for byte.
        let replicas = try await ReplicaRepository(pool: harness.pool).replicas(checkpointID: step10)
        #expect(replicas.first { $0.target == "local-a" }?.state == .committed)
        let onB = try #require(replicas.first { $0.target == "local-b" })
        #expect(onB.state == .corrupt || onB.state == .committed, "\(onB.state)")
        if onB.state == .committed {
            let sealed = SealedCheckpoint(manifest: stored.manifest, manifestJSON: stored.manifestJSON, sidecar: stored.sidecar, format: .marker)
            let store = try FileStore(url: try StoreURL(parsing: "file://\(harness.home)/stores/local-b"))
            #expect(try await Replicator(store: store).verify(sealed, deep: true).isConsistent)
        }
        let interrupted = try await harness.events(job.id).filter { $0.kind == "attempt_interrupted" }
        #expect(interrupted.contains { $0.message?.contains("restore failed") ?? false }, "the event says why")
        let log = try await harness.localLog(job: job.id, attempt: 2, target: "local-b")
        #expect(log.contains("does not match the manifest"))
        #expect(!log.contains("run: starting"), "the job must not start on a copy that failed verification")

        let straight = try harness.straightRun(steps: 30, every: 10)
        #expect(try await Self.finalCheckpoint(harness, job: job.id, step: 30) == (try await CheckpointSealer().seal(directory: straight, format: .marker)).id)
    }

    @Test("tern migrate from a local target to a real Slurm target whose store is GCS (fake-gcs-server): bit-identical")
    func migrateToSlurmOnGCS() async throws {
        let harness = try await SchedulerHarness.make(label: "migrate")
        defer { Task { await harness.close() } }
        let cluster = try await TestSlurm.cluster()
        let gcs = try await TestFakeGCS.shared.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(16))"
        try await TestFakeGCS.createBucket(bucket, on: gcs)
        try await TargetRepository(pool: harness.pool).apply([
            TargetDefinition(name: "laptop", kind: .local, region: nil, storage: "file://\(harness.home)/stores/laptop", accelerators: [], maxNodes: 1,
                             spot: false, settings: [:], credentialsFile: nil, labels: [:]),
            TargetDefinition(name: "cluster", kind: .slurm, region: nil, storage: "gs://\(bucket)/ckpt", accelerators: [], maxNodes: 1,
                             spot: false, settings: ["partition": .string("debug")], credentialsFile: nil, labels: [:], storageEndpoint: gcs.baseURL),
        ])
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in cluster.environment { environment[key] = value }
        let registry = ExecutorRegistry(executors: [.local: LocalExecutor(home: harness.home), .slurm: SlurmExecutor(home: harness.home, environment: environment)])
        let job = try #require(try await harness.submit(Self.trainer(steps: 40, every: 10, delay: 0.1, targets: ["laptop", "cluster"])).first)
        let scheduler = harness.scheduler(registry: registry) { $0.pollInterval = .milliseconds(200) }
        let running = Task { try await harness.drain(scheduler) }
        try await harness.wait("a checkpoint committed on laptop") { try await !harness.committedSteps(job: job.id, target: "laptop").isEmpty }
        let outcome = try await JobRepository(pool: harness.pool).migrate(jobID: job.id, to: "cluster", grace: .seconds(10))
        #expect(outcome.changed)
        scheduler.wake()
        try await running.value

        #expect(try await harness.job(job.id).state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        #expect(attempts.map(\.target) == ["laptop", "cluster"])
        #expect(attempts[0].state == .cancelled && attempts[0].endReason == "migrated")
        #expect(attempts[1].state == .succeeded)
        #expect(Int(attempts[1].externalID ?? "") != nil, "attempt 2 ran as a Slurm job")
        let kinds = try await harness.events(job.id).map(\.kind)
        for kind in ["migrate_requested", "attempt_stopped", "checkpoint_replicated", "attempt_launched", "attempt_succeeded"] {
            #expect(kinds.contains(kind), "\(kind) in \(kinds)")
        }
        // The stop asked for a checkpoint: attempt 1's newest one is what attempt 2 resumed from.
        let written = try await CheckpointRepository(pool: harness.pool).list(job: job.id).filter { $0.attemptID == attempts[0].id }
        #expect(attempts[1].resumeCheckpoint == written.max { $0.step < $1.step }?.checkpointID)
        #expect(try await harness.committedSteps(job: job.id, target: "cluster").contains(40))

        let straight = try harness.straightRun(steps: 40, every: 10)
        #expect(try await Self.finalCheckpoint(harness, job: job.id, step: 40) == (try await CheckpointSealer().seal(directory: straight, format: .marker)).id)
    }

    @Test("a capacity refusal blocks that offer: the job is placed elsewhere, and the next job goes elsewhere without trying it")
    func capacityBlocks() async throws {
        let harness = try await SchedulerHarness.make(label: "capacity")
        defer { Task { await harness.close() } }
        try await TargetRepository(pool: harness.pool).apply([
            TargetDefinition(name: "small", kind: .local, region: nil, storage: "file://\(harness.home)/stores/small", accelerators: [], maxNodes: 1,
                             spot: false, settings: ["slots": .integer(1)], credentialsFile: nil, labels: [:]),
            TargetDefinition(name: "big", kind: .local, region: nil, storage: "file://\(harness.home)/stores/big", accelerators: [], maxNodes: 1,
                             spot: false, settings: ["slots": .integer(8)], credentialsFile: nil, labels: [:]),
        ])
        let spec = "name: busy\nrun: sleep 2\nplacement: {targets: [small, big], strategy: ordered}\n"
        let first = try #require(try await harness.submit(spec).first)
        let scheduler = harness.scheduler()
        let running = Task { try await harness.drain(scheduler) }
        try await harness.wait("the first job running on small") { try await harness.job(first.id).state == .running }
        let second = try #require(try await harness.submit(spec).first)
        try await harness.wait("the second job placed") { try await harness.attempts(second.id).contains { $0.target == "big" } }
        let third = try #require(try await harness.submit(spec).first)
        scheduler.wake()
        try await running.value

        #expect(try await harness.attempts(first.id).map(\.target) == ["small"])
        // The second tried small, was refused for capacity, and went to big.
        let secondAttempts = try await harness.attempts(second.id)
        #expect(secondAttempts.map(\.target) == ["small", "big"])
        #expect(secondAttempts[0].endReason == "no_resources")
        // The third never tried small: the block told placement it was full.
        let thirdAttempts = try await harness.attempts(third.id)
        #expect(thirdAttempts.map(\.target) == ["big"])
        let placement = try #require(thirdAttempts[0].placementJSON)
        #expect(placement.contains("capacity for local blocked until"))
        let blocks = try await harness.pool.query("SELECT target, offer FROM capacity_blocks")
        #expect(try blocks.map { try $0.decode(String.self, String.self) }.map { "\($0.0)/\($0.1)" } == ["small/local"])
        for job in [first, second, third] { #expect(try await harness.job(job.id).state == .succeeded) }
    }
}
