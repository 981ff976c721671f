import Foundation
@testable import TernControl
import TernCheckpoints
import TernExecutors
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// The scheduler and the Slurm executor against a real single-host Slurm (Debian's slurm-wlm 22.05,
/// started by the test harness): sbatch, squeue --json, scancel, and `tern agent` under srun.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SlurmSchedulingTests {
    static func slurmHarness(_ label: String) async throws -> (SchedulerHarness, TestSlurm.Cluster, ExecutorRegistry) {
        let cluster = try await TestSlurm.cluster()
        let harness = try await SchedulerHarness.make(label: label)
        let target = TargetDefinition(name: "onprem", kind: .slurm, region: nil, storage: "file://\(harness.home)/stores/onprem", accelerators: [],
                                      maxNodes: 1, spot: false, settings: ["partition": .string("debug")], credentialsFile: nil, labels: [:])
        try await TargetRepository(pool: harness.pool).apply([target])
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in cluster.environment { environment[key] = value }
        let registry = ExecutorRegistry(executors: [.slurm: SlurmExecutor(home: harness.home, environment: environment)])
        return (harness, cluster, registry)
    }

    @Test("submit on Slurm: sbatch with the key as job name, the agent under srun, checkpoints committed, success")
    func runsToSuccess() async throws {
        let (harness, _, registry) = try await Self.slurmHarness("slurm-ok")
        defer { Task { await harness.close() } }
        let job = try #require(try await harness.submit("""
            name: on-slurm
            env: {TRAINER_STEPS: 20, TRAINER_CHECKPOINT_EVERY: 10, TRAINER_MODEL_MB: 1}
            run: |
              echo "slurm job $SLURM_JOB_ID rank $TERN_NODE_RANK master $TERN_MASTER_ADDR:$TERN_MASTER_PORT"
              python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --resume-from "$TERN_RESUME_FROM"
            checkpoint: {format: marker}
            timeout: 10m
            """).first)

        try await harness.drain(harness.scheduler(registry: registry) { $0.pollInterval = .milliseconds(200) })

        #expect(try await harness.job(job.id).state == .succeeded)
        let attempt = try #require(try await harness.attempts(job.id).first)
        #expect(attempt.state == .succeeded)
        #expect(Int(attempt.externalID ?? "") != nil, "the Slurm job id is the attempt's external id")
        let checkpoints = try await CheckpointRepository(pool: harness.pool).list(job: job.id)
        #expect(checkpoints.map(\.step).sorted() == [10, 20])
        let replicas = try await ReplicaRepository(pool: harness.pool).replicas(job: job.id)
        #expect(replicas.allSatisfy { $0.replica.state == .committed && $0.replica.target == "onprem" })
        let directory = SlurmExecutor(home: harness.home).directory(key: attempt.key, target: try #require(try await TargetRepository(pool: harness.pool).definitions().first))
        let log = try String(contentsOfFile: directory.logFile(node: 0), encoding: .utf8)
        #expect(log.contains("slurm job \(attempt.externalID!) rank 0 master 127.0.0.1:"))
        #expect(log.contains("step 20 loss"))
    }

    @Test("a failing Slurm job is reported with its exit code; a launch with the same key adopts the submitted job")
    func failureAndAdoption() async throws {
        let (harness, _, registry) = try await Self.slurmHarness("slurm-fail")
        defer { Task { await harness.close() } }
        let job = try #require(try await harness.submit("name: fails-on-slurm\nrun: exit 7\n").first)

        try await harness.drain(harness.scheduler(registry: registry) { $0.pollInterval = .milliseconds(200) })

        let failed = try await harness.job(job.id)
        #expect(failed.state == .failed)
        #expect(failed.failureReason == "exit_code")
        let attempt = try #require(try await harness.attempts(job.id).first)
        #expect(attempt.exitCode == 7)

        // The executor finds the job Slurm already has under the key instead of submitting again.
        let target = try #require(try await TargetRepository(pool: harness.pool).definitions().first)
        let executor = try #require(registry.executor(for: target))
        #expect(try await executor.find(key: attempt.key, target: target) == attempt.externalID)
    }

    @Test("cancel on Slurm: scancel reaches the agent, which stops the job; the attempt ends cancelled")
    func cancel() async throws {
        let (harness, _, registry) = try await Self.slurmHarness("slurm-cancel")
        defer { Task { await harness.close() } }
        let job = try #require(try await harness.submit("name: long-on-slurm\nrun: sleep 300\n").first)
        let scheduler = harness.scheduler(registry: registry) { $0.pollInterval = .milliseconds(200) }
        let running = Task { try await harness.drain(scheduler) }
        while try await harness.job(job.id).state != .running { try await Task.sleep(for: .milliseconds(100)) }
        _ = try await JobRepository(pool: harness.pool).cancel(jobID: job.id)
        scheduler.wake()
        try await running.value

        #expect(try await harness.job(job.id).state == .cancelled)
        #expect(try await harness.attempts(job.id).map(\.state) == [.cancelled])
        #expect(processesOfJob(job.id) == [])
    }
}
