import ArgumentParser
import Foundation
import Glibc
import TernCheckpoints
import TernControl
import TernExecutors
import TernModel
import TernPostgres

/// `TernBench failover`: from the kill of an attempt to the first training step of the next, with
/// and without pre-replication, for a checkpoint of `--model-mb`.
struct FailoverBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Measure failover time (kill of an attempt → first training step of the next) and bytes moved, with and without pre-replication.",
        discussion: """
            Two local targets, each with its own file store under --directory. The example trainer \
            (--model-mb of weights) runs on target a under a scheduler in this process and the \
            built `tern agent`. Once a checkpoint is committed on a (and, with pre-replication, on b), \
            the attempt is killed without notice (SIGKILL, like a spot node that vanishes). Timed: \
            from the kill to the first `step N loss` line of the next attempt on b, which has restored \
            and verified the checkpoint. Reported with the bytes the failover moved (the copy to b \
            made after the kill). See docs/benchmarks.md.
            """)

    @Option(name: .customLong("model-mb"), help: ArgumentHelp("Size of the trainer's weights (the checkpoint).", valueName: "MiB")) var modelMB = 1024
    @Option(help: ArgumentHelp("Where the stores and attempts go (default /tmp).", valueName: "dir")) var directory = "/tmp"
    @Option(help: ArgumentHelp("The tern program the nodes run as `tern agent` (default: beside TernBench).", valueName: "path")) var tern: String?
    @Option(help: ArgumentHelp("Runs of each measurement.", valueName: "n")) var runs = 1

    struct Sample {
        var preReplication: Bool
        var seconds: Double
        var bytesMoved: Int64
        var checkpointBytes: Int64
    }

    func run() async throws {
        let program = tern ?? (CommandLine.arguments[0] as NSString).deletingLastPathComponent + "/tern"
        guard FileManager.default.isExecutableFile(atPath: program) else {
            throw BenchError("\(program) is missing: build it (swift build -c release --product tern) or pass --tern PATH")
        }
        let migrations = try Migration.load(directory: try SubmitBench.locateMigrations(explicit: nil))
        let repository = (try SubmitBench.locateMigrations(explicit: nil) as NSString).deletingLastPathComponent
        let server = try await Server.open(databaseURL: nil)
        var samples: [Sample] = []
        do {
            for _ in 0..<runs {
                for preReplication in [true, false] {
                    samples.append(try await measure(preReplication: preReplication, server: server, migrations: migrations,
                                                     repository: repository, program: program))
                }
            }
            server.close()
        } catch {
            server.close()
            throw error
        }
        print("| measurement | checkpoint | failover seconds | bytes moved at failover |")
        print("|---|---:|---:|---:|")
        for sample in samples {
            print(String(format: "| %@ | %.0f MiB | %.2f | %lld |", sample.preReplication ? "with pre-replication" : "without pre-replication",
                         Double(sample.checkpointBytes) / 1_048_576, sample.seconds, sample.bytesMoved))
        }
        for sample in samples where sample.preReplication {
            let met = sample.seconds < 10 && sample.bytesMoved == 0
            print(String(format: "goal: with pre-replication, under 10 s and 0 bytes moved at failover: %.2f s, %lld bytes — %@",
                         sample.seconds, sample.bytesMoved, met ? "met" : "NOT met"))
        }
    }

    private func measure(preReplication: Bool, server: Server, migrations: [Migration], repository: String, program: String) async throws -> Sample {
        let label = preReplication ? "with" : "without"
        let root = directory + "/tern-bench-failover-\(getpid())-\(label)"
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pool = try PostgresPool(connectionString: server.connectionString, maxConnections: 4)
        defer { Task { await pool.close() } }
        try await MigrationRunner(pool: pool, migrations: migrations).migrate()
        try await SubmitBench.emptyTables(pool, targetsToo: true)
        try await pool.query("TRUNCATE checkpoints CASCADE")
        try await TargetRepository(pool: pool).apply(["a", "b"].map { name in
            TargetDefinition(name: name, kind: .local, region: nil, storage: "file://\(root)/store-\(name)", accelerators: [], maxNodes: 1,
                             spot: true, settings: [:], credentialsFile: nil, labels: [:])
        })
        let yaml = """
            name: failover-\(label)
            env: {TRAINER_STEPS: 1000, TRAINER_CHECKPOINT_EVERY: 10, TRAINER_MODEL_MB: \(modelMB), TRAINER_STEP_DELAY: 0.05}
            run: python3 examples/trainer/train.py --ckpt-dir "$TERN_CHECKPOINT_DIR" --resume-from "$TERN_RESUME_FROM"
            checkpoint: {format: marker, replicate_to: [\(preReplication ? "b" : "")]}
            placement: {targets: [a, b], strategy: ordered}
            """
        let spec = try JobSpecParser.parse(yaml, file: "failover.yaml").get().spec
        let job = try await JobRepository(pool: pool).submit([NewJob(spec: spec, workdirBase: repository)])[0]

        var configuration = SchedulerConfiguration(replicaID: "bench-failover", agentProgram: program, agentDatabaseURL: server.connectionString, home: root)
        configuration.pollInterval = .milliseconds(100)
        configuration.agentHeartbeat = .seconds(1)
        configuration.agentCheckpointPoll = .milliseconds(200)
        configuration.preReplicationInterval = .milliseconds(200)
        let scheduler = Scheduler(pool: pool, configuration: configuration, registry: .standard(home: root))
        let running = Task { await scheduler.run(listenOn: server.connectionString) }
        defer { running.cancel() }

        let replicas = ReplicaRepository(pool: pool)
        func committed(_ target: String) async throws -> Set<Int64> {
            Set(try await replicas.replicas(job: job.id).filter { $0.replica.state == .committed && $0.replica.target == target }.map(\.step))
        }
        progress("\(label) pre-replication: waiting for step 10 (\(modelMB) MiB) committed on a\(preReplication ? " and b" : "")")
        try await waitFor("the first checkpoint", limit: .seconds(600)) {
            let onA = try await committed("a")
            return preReplication ? !onA.intersection(try await committed("b")).isEmpty : !onA.isEmpty
        }
        let attempts = AttemptRepository(pool: pool)
        let first = try await attempts.latest(job: job.id)!
        let target = try await TargetRepository(pool: pool).definitions().first { $0.name == "a" }!
        let events = JobRepository(pool: pool)
        let eventsBefore = try await events.events(jobID: job.id).map(\.id).max() ?? 0

        progress("\(label) pre-replication: killing attempt 1 without notice")
        let killed = ContinuousClock.now
        try await LocalExecutor(home: root).preempt(AttemptHandle(key: first.key, externalID: first.externalID, target: target, nodes: 1), notice: false)
        scheduler.wake()
        var firstStep: ContinuousClock.Instant?
        try await waitFor("the next attempt's first step", limit: .seconds(600), interval: .milliseconds(20)) {
            guard let next = try await attempts.latest(job: job.id), next.number == 2 else { return false }
            let log = root + "/local/\(next.target)/attempts/\(next.key)/node-0.log"
            guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return false }
            if text.split(separator: "\n").contains(where: { $0.hasPrefix("step ") && $0.contains(" loss ") }) {
                firstStep = .now
                return true
            }
            return false
        }
        let seconds = (firstStep! - killed).seconds
        let moved = try await events.events(jobID: job.id).filter { $0.id > eventsBefore && $0.kind == "checkpoint_replicated" && ($0.message?.contains("(placement)") ?? false) }
        let bytes = moved.compactMap { event -> Int64? in
            guard let data = event.detailsJSON?.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return (object["bytes_moved"] as? String).flatMap(Int64.init)
        }.reduce(0, +)
        let resumed = try await attempts.latest(job: job.id)?.resumeCheckpoint
        let checkpointBytes = try await CheckpointRepository(pool: pool).list(job: job.id).first { $0.checkpointID == resumed }?.bytes ?? 0
        _ = try await JobRepository(pool: pool).cancel(jobID: job.id)
        scheduler.wake()
        try await waitFor("the job to stop", limit: .seconds(120)) { try await JobRepository(pool: pool).job(id: job.id).state.isTerminal }
        running.cancel()
        await running.value
        return Sample(preReplication: preReplication, seconds: seconds, bytesMoved: bytes, checkpointBytes: checkpointBytes)
    }

    private func waitFor(_ what: String, limit: Duration, interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while try await !condition() {
            if ContinuousClock.now > deadline { throw BenchError("waited \(limit) for \(what)") }
            try await Task.sleep(for: interval)
        }
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("tern-bench: \(line)\n".utf8))
    }
}
