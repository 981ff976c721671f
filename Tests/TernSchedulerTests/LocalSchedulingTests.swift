import Foundation
@testable import TernControl
import TernCheckpoints
import TernExecutors
import TernModel
import TernPostgres
import TernStorage
import TernTestSupport
import Testing

/// The scheduler, the local executor and `tern agent` together, against a real PostgreSQL: real
/// processes, real checkpoints on a file store.
@Suite(.serialized, .timeLimit(.minutes(5))) struct LocalSchedulingTests {
    /// The demo trainer, small and quick: 30 steps, a checkpoint every 10.
    static let trainerSpec = """
        name: trainer
        resources: {cpus: 1}
        env: {TRAINER_STEPS: 30, TRAINER_CHECKPOINT_EVERY: 10, TRAINER_MODEL_MB: 1}
        run: python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --resume-from "$TERN_RESUME_FROM"
        checkpoint: {format: marker}
        """

    @Test("the demo trainer runs to success; every checkpoint it wrote is sealed and committed on the target's store; logs show it")
    func trainerEndToEnd() async throws {
        let harness = try await SchedulerHarness.make(label: "e2e")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let job = try #require(try await harness.submit(Self.trainerSpec).first)

        try await harness.drain(harness.scheduler())

        let finished = try await harness.job(job.id)
        #expect(finished.state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        #expect(attempts.map(\.state) == [.succeeded])
        #expect(attempts.first?.exitCode == 0)

        // Steps 10, 20, 30: sealed, recorded for this attempt, committed on local's store.
        let checkpoints = try await CheckpointRepository(pool: harness.pool).list(job: job.id)
        #expect(checkpoints.map(\.step).sorted() == [10, 20, 30])
        #expect(checkpoints.allSatisfy { $0.attemptID == attempts.first?.id })
        let replicas = try await ReplicaRepository(pool: harness.pool).replicas(job: job.id)
        #expect(replicas.count == 3)
        #expect(replicas.allSatisfy { $0.replica.state == .committed && $0.replica.target == "local" })
        // And the store itself holds each commit marker: a reader would accept them.
        let store = try FileStore(url: try StoreURL(parsing: "file://\(harness.home)/stores/local"))
        for checkpoint in checkpoints {
            #expect(try await store.head(StoreLayout.commitMarker(id: checkpoint.checkpointID)) != nil)
        }

        let log = try await harness.localLog(job: job.id, attempt: 1, target: "local")
        #expect(log.contains("step 30 loss"))
        #expect(log.contains("checkpoint step 30"))
        let kinds = try await harness.events(job.id).map(\.kind)
        #expect(kinds.starts(with: ["submitted", "attempt_launched"]))
        #expect(kinds.last == "attempt_succeeded")
    }

    @Test("an idle scheduler is woken by the submission's NOTIFY: with hour-long polls, the job still launches; cancelling ends the wait",
          .timeLimit(.minutes(2)))
    func notifyWakesAnIdleScheduler() async throws {
        let harness = try await SchedulerHarness.make(label: "notify")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let scheduler = harness.scheduler { configuration in
            configuration.pollInterval = .seconds(3600)
            configuration.orphanScanInterval = .seconds(3600)
        }
        let running = Task { await scheduler.run(listenOn: harness.connectionString) }
        defer { running.cancel() }
        // Parked between ticks with its LISTEN in place: from here only a wake can move it.
        try await harness.wait("the scheduler to listen and park") {
            let listening = try await harness.pool.query(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'").scalar(Int.self)
            return listening > 0 && scheduler.isWaitingForWork
        }
        let job = try #require(try await harness.submit("name: woken\nrun: 'true'\n").first)
        try await harness.wait("the job's first attempt") { !(try await harness.attempts(job.id)).isEmpty }
        // Cancelled while parked for an hour, the loop ends now (SIGTERM to `tern scheduler`).
        try await harness.wait("the scheduler to park again") { scheduler.isWaitingForWork }
        running.cancel()
        await running.value
    }

    @Test("a 2-node local job sees distinct ranks 0 and 1, the same master address and port, and WORLD_SIZE 2")
    func twoNodeRanks() async throws {
        let harness = try await SchedulerHarness.make(label: "ranks")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let out = harness.home + "/ranks"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let job = try #require(try await harness.submit("""
            name: ranks
            nodes: 2
            run: echo "$TERN_NODE_RANK $NODE_RANK $TERN_NUM_NODES $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $TERN_MASTER_ADDR $TERN_MASTER_PORT $TERN_ATTEMPT" > \(out)/rank-$TERN_NODE_RANK
            """).first)

        try await harness.drain(harness.scheduler())

        #expect(try await harness.job(job.id).state == .succeeded)
        let lines = try (0..<2).map { try String(contentsOfFile: "\(out)/rank-\($0)", encoding: .utf8).split(separator: " ").map(String.init) }
        #expect(lines[0][0] == "0" && lines[1][0] == "1")
        #expect(lines.allSatisfy { $0[0] == $0[1] })
        #expect(lines.allSatisfy { $0[2] == "2" && $0[3] == "2" })
        #expect(lines[0][4] == lines[1][4] && lines[0][5] == lines[1][5])
        #expect(lines.allSatisfy { $0[4] == $0[6] && $0[5] == $0[7] })
        #expect(Int(lines[0][5]).map { $0 > 0 } ?? false)
        #expect(lines.allSatisfy { $0[8].trimmingCharacters(in: .whitespacesAndNewlines) == "1" })
    }

    @Test("cancelling a running job stops it and leaves no process behind, not even one that left the job's process group")
    func cancelLeavesNoProcess() async throws {
        let harness = try await SchedulerHarness.make(label: "cancel")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let marker = harness.home + "/started"
        let job = try #require(try await harness.submit("""
            name: sleeper
            run: |
              (setsid sleep 600 &)
              sleep 600 &
              touch \(marker)
              sleep 600
            """).first)

        let scheduler = harness.scheduler()
        let running = Task { try await harness.drain(scheduler) }
        while !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(processesOfJob(job.id).count >= 4)
        let outcome = try await JobRepository(pool: harness.pool).cancel(jobID: job.id)
        #expect(outcome.to == .cancelling)
        scheduler.wake()
        try await running.value

        #expect(try await harness.job(job.id).state == .cancelled)
        #expect(try await harness.attempts(job.id).map(\.state) == [.cancelled])
        // The agent has reaped everything before it wrote its result; nothing of the job runs.
        #expect(processesOfJob(job.id) == [])
        let kinds = try await harness.events(job.id).map(\.kind)
        #expect(kinds.suffix(2) == ["cancel_requested", "attempt_stopped"])
    }

    @Test("recovery: a retryable exit code is retried (attempt 2 succeeds); a node that dies is recovered; other codes fail the job")
    func recoveryPolicy() async throws {
        let harness = try await SchedulerHarness.make(label: "recovery")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        let retried = try #require(try await harness.submit("""
            name: retried
            run: test "$TERN_ATTEMPT" -ge 2 || exit 75
            recovery: {max_restarts_on_errors: 1, recover_on_exit_codes: [75]}
            """).first)
        let exhausted = try #require(try await harness.submit("""
            name: exhausted
            run: exit 75
            recovery: {max_restarts_on_errors: 1, recover_on_exit_codes: [75]}
            """).first)
        let failing = try #require(try await harness.submit("""
            name: failing
            run: exit 3
            recovery: {max_restarts_on_errors: 5, recover_on_exit_codes: [75]}
            """).first)
        // The agent is the shell's parent: killing it is a node going away mid-run.
        let lost = try #require(try await harness.submit("""
            name: lost
            run: test "$TERN_ATTEMPT" -ge 2 || { kill -9 $PPID; sleep 30; }
            """).first)
        let setup = try #require(try await harness.submit("""
            name: setup-fails
            setup: exit 4
            run: "true"
            """).first)

        try await harness.drain(harness.scheduler())

        let retriedJob = try await harness.job(retried.id)
        #expect(retriedJob.state == .succeeded)
        #expect(retriedJob.restarts == 1)
        #expect(try await harness.attempts(retried.id).map(\.state) == [.failed, .succeeded])

        let exhaustedJob = try await harness.job(exhausted.id)
        #expect(exhaustedJob.state == .failed)
        #expect(exhaustedJob.failureReason == "exit_code")
        #expect(try await harness.attempts(exhausted.id).count == 2)

        let failingJob = try await harness.job(failing.id)
        #expect(failingJob.state == .failed)
        #expect(failingJob.failureReason == "exit_code")
        #expect(try await harness.attempts(failing.id).map(\.exitCode) == [3])

        let lostJob = try await harness.job(lost.id)
        #expect(lostJob.state == .succeeded)
        #expect(lostJob.preemptions == 1)
        let lostAttempts = try await harness.attempts(lost.id)
        #expect(lostAttempts.map(\.state) == [.lost, .succeeded])
        #expect(lostAttempts.first?.endReason == "node_lost")

        let setupJob = try await harness.job(setup.id)
        #expect(setupJob.state == .failed)
        #expect(setupJob.failureReason == "setup_failed")
    }

    @Test("a restart resumes from the newest committed checkpoint: the trainer continues and ends bit-identical to a straight run")
    func restartResumesFromTheNewestCheckpoint() async throws {
        let harness = try await SchedulerHarness.make(label: "resume")
        defer { Task { await harness.close() } }
        try await harness.registerLocalTargets(["local"])
        // Attempt 1 stops itself after step 20's checkpoint with a retryable code; attempt 2 must
        // resume from step 20 and finish.
        let job = try #require(try await harness.submit("""
            name: resumer
            env: {TRAINER_STEPS: 30, TRAINER_CHECKPOINT_EVERY: 10, TRAINER_MODEL_MB: 1}
            run: |
              if [ "$TERN_ATTEMPT" = 1 ]; then
                python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --stop-after-step 20 && exit 75
              else
                python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --resume-from "$TERN_RESUME_FROM"
              fi
            checkpoint: {format: marker}
            recovery: {max_restarts_on_errors: 1, recover_on_exit_codes: [75]}
            """).first)

        try await harness.drain(harness.scheduler())

        #expect(try await harness.job(job.id).state == .succeeded)
        let attempts = try await harness.attempts(job.id)
        #expect(attempts.count == 2)
        let checkpoints = try await CheckpointRepository(pool: harness.pool).list(job: job.id)
        let step20 = try #require(checkpoints.first { $0.step == 20 })
        #expect(attempts[1].resumeCheckpoint == step20.checkpointID)
        let log = try await harness.localLog(job: job.id, attempt: 2, target: "local")
        #expect(log.contains("every chunk verified"))
        #expect(!log.contains("step 10 loss"))
        #expect(log.contains("step 21 loss"))

        // A straight 30-step run writes the same final checkpoint bytes: same manifest id.
        let straight = harness.home + "/straight"
        let status = try ChildProcess.run("/usr/bin/env", ["python3", SchedulerHarness.repository + "/examples/trainer/train.py", "--ckpt-dir", straight,
                                                           "--steps", "30", "--checkpoint-every", "10", "--model-mb", "1"],
                                          outputPath: harness.home + "/straight.log")
        #expect(status == 0)
        let sealed = try await CheckpointSealer().seal(directory: straight + "/step-00000030", format: .marker)
        #expect(checkpoints.first { $0.step == 30 }?.checkpointID == sealed.id)
    }
}
