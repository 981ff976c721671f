import Foundation
@testable import TernControl
import TernCheckpoints
import TernExecutors
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// A fresh database with the migrations applied, a scratch `$TERN_HOME`, and helpers to register
/// targets, submit specs and run scheduler replicas against them. Everything real: PostgreSQL, the
/// local executor's processes, the built `tern` as the agent.
struct SchedulerHarness {
    let pool: PostgresPool
    let connectionString: String
    let home: String

    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func make(label: String) async throws -> SchedulerHarness {
        let connectionString = try await TestDatabase.fresh()
        let pool = try PostgresPool(connectionString: connectionString, maxConnections: 6)
        try await MigrationRunner(pool: pool, migrations: try Migration.load(directory: repository + "/migrations")).migrate()
        let home = TestDatabase.scratchDirectory(label)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        return SchedulerHarness(pool: pool, connectionString: connectionString, home: home)
    }

    func close() async {
        await pool.close()
        try? FileManager.default.removeItem(atPath: home)
    }

    /// Registers local targets, each with its own file store under the harness's home.
    func registerLocalTargets(_ names: [String], slots: Int = 8, maxNodes: Int = 4) async throws {
        let targets = names.map { name in
            TargetDefinition(name: name, kind: .local, region: nil, storage: "file://\(home)/stores/\(name)", accelerators: [], maxNodes: maxNodes,
                             spot: false, settings: ["slots": .integer(Int64(slots))], credentialsFile: nil, labels: [:])
        }
        try await TargetRepository(pool: pool).apply(targets)
    }

    /// Parses `yaml` as a spec file would be and submits it, run from `workdirBase`.
    @discardableResult
    func submit(_ yaml: String, workdirBase: String? = nil, count: Int = 1) async throws -> [JobRecord] {
        let spec: JobSpec
        switch JobSpecParser.parse(yaml, file: "test.yaml") {
        case .success(let parsed): spec = parsed.spec
        case .failure(let error): throw error
        }
        let jobs = (0..<count).map { _ in NewJob(spec: spec, workdirBase: workdirBase ?? Self.repository) }
        return try await JobRepository(pool: pool).submit(jobs)
    }

    func configuration(replica: String = "test") -> SchedulerConfiguration {
        var configuration = SchedulerConfiguration(replicaID: replica, agentProgram: TernBinary.path, agentDatabaseURL: connectionString, home: home)
        configuration.pollInterval = .milliseconds(100)
        configuration.orphanScanInterval = .milliseconds(500)
        configuration.agentHeartbeat = .milliseconds(300)
        configuration.agentCheckpointPoll = .milliseconds(100)
        configuration.stopGrace = .seconds(5)
        configuration.retryBackoff = .milliseconds(100)
        return configuration
    }

    func scheduler(replica: String = "test", registry: ExecutorRegistry? = nil, pool: PostgresPool? = nil,
                   configure: (inout SchedulerConfiguration) -> Void = { _ in }) -> Scheduler {
        var configuration = configuration(replica: replica)
        configure(&configuration)
        return Scheduler(pool: pool ?? self.pool, configuration: configuration, registry: registry ?? .standard(home: home))
    }

    func job(_ id: UUID) async throws -> JobRecord {
        try await JobRepository(pool: pool).job(id: id)
    }

    func attempts(_ id: UUID) async throws -> [AttemptRecord] {
        try await AttemptRepository(pool: pool).attempts(job: id)
    }

    func events(_ id: UUID) async throws -> [JobEventRecord] {
        try await JobRepository(pool: pool).events(jobID: id)
    }

    /// The log of node `node` of attempt `number` of a job on a local target.
    func localLog(job: UUID, attempt number: Int, target: String, node: Int = 0) async throws -> String {
        let attempt = try #require(try await attempts(job).first { $0.number == number })
        let directory = AttemptDirectory(path: home + "/local/" + target + "/attempts/" + attempt.key)
        return (try? String(contentsOfFile: directory.logFile(node: node), encoding: .utf8)) ?? ""
    }

    /// Runs `scheduler` until it holds no job, failing the test after `limit`.
    func drain(_ scheduler: Scheduler, limit: Duration = .seconds(120)) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await scheduler.runUntilIdle() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw SchedulerTestTimeout(limit: limit, what: "the scheduler to finish its jobs")
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

extension SchedulerHarness {
    /// Polls `condition` until it holds (every 50 ms), failing after `limit`: for states another
    /// task or process reaches (a checkpoint committed, an attempt running).
    func wait(_ what: String, limit: Duration = .seconds(60), until condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        while try await !condition() {
            if clock.now > deadline { throw SchedulerTestTimeout(limit: limit, what: what) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Steps of the job's checkpoints committed on the store of `target`.
    func committedSteps(job: UUID, target: String) async throws -> [Int64] {
        try await ReplicaRepository(pool: pool).replicas(job: job).filter { $0.replica.state == .committed && $0.replica.target == target }
            .map(\.step).sorted()
    }

    /// Takes a local attempt's capacity back, as a cloud reclaims a spot instance.
    func preempt(job: UUID, target: String) async throws {
        let attempt = try #require(try await attempts(job).last)
        let definition = try #require(try await TargetRepository(pool: pool).definitions().first { $0.name == target })
        try await LocalExecutor(home: home).preempt(AttemptHandle(key: attempt.key, externalID: attempt.externalID, target: definition, nodes: 1))
    }

    /// The manifest id of step `steps` of a straight run of the example trainer, for bit-identity.
    func straightRun(steps: Int, every: Int, modelMB: Double = 1, extra: [String] = []) throws -> String {
        let directory = home + "/straight-\(UUID().uuidString.prefix(8))"
        let status = try ChildProcess.run("/usr/bin/env", ["python3", Self.repository + "/examples/trainer/train.py", "--ckpt-dir", directory,
                                                           "--steps", String(steps), "--checkpoint-every", String(every), "--model-mb", String(modelMB)] + extra,
                                          outputPath: directory + ".log")
        guard status == 0 else { throw SchedulerTestTimeout(limit: .zero, what: "the straight trainer run exited \(status)") }
        return String(format: "%@/step-%08d", directory, steps)
    }
}

struct SchedulerTestTimeout: Error, CustomStringConvertible {
    var limit: Duration
    var what = "the scheduler to finish its jobs"
    var description: String { "waited \(limit) for \(what)" }
}

/// Processes whose environment carries `TERN_JOB_ID=<job>`: what a job left running.
func processesOfJob(_ job: UUID) -> [Int32] {
    let needle = "TERN_JOB_ID=\(job.uuidString.lowercased())"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        guard let state = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !state.contains(") Z ") else { return false }
        return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == needle }
    }
}
