import ArgumentParser
import Foundation
import Synchronization
import TernControl
import TernExecutors
import TernModel
import TernPostgres

/// `TernBench scheduler`: jobs through the whole lifecycle with a no-op executor, next to pgbench's
/// claim ceiling on the same server in the same run.
struct SchedulerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Measure scheduler throughput (pending → succeeded, no-op executor) and submit-to-launch latency, next to pgbench's claim ceiling.",
        discussion: """
            For each replica count: submits --count jobs, then runs that many scheduler replicas \
            (each with its own pool of 2 connections, in this process) until every job has gone \
            pending → starting → succeeded through the no-op executor, and reports jobs per second \
            from the first claim to the last job done. Every job must be launched exactly once. Then \
            pgbench, with as many clients, claims the same number of pending rows one per \
            transaction (SELECT … FOR UPDATE SKIP LOCKED, then mark it running): the claim ceiling. \
            Finally, with one idle replica listening, submits --latency-samples jobs one at a time and \
            times each from the submit call to its launch (p50, p99). See docs/benchmarks.md.
            """)

    @Option(help: ArgumentHelp("Jobs per throughput measurement.", valueName: "n")) var count = 10_000
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Replica counts to measure.", valueName: "n")) var replicas: [Int] = [1, 3]
    @Option(name: .customLong("claim-batch"), help: ArgumentHelp("Jobs a replica claims per statement.", valueName: "n")) var claimBatch = 500
    @Option(name: .customLong("latency-samples"), help: ArgumentHelp("Jobs submitted one at a time for the latency measurement.", valueName: "n"))
    var latencySamples = 200
    @Option(name: .long, help: ArgumentHelp("Server to measure; its Tern tables are emptied. Default: a throwaway embedded cluster.", valueName: "url"))
    var databaseURL: String?
    @Option(name: .customLong("migrations"), help: ArgumentHelp("Tern's migrations directory (default: migrations/ in or above the current directory).", valueName: "dir"))
    var migrationsDirectory: String?
    @Flag(help: "Print the results as JSON.") var json = false

    func validate() throws {
        guard count >= 1, latencySamples >= 1, claimBatch >= 1 else { throw ValidationError("--count, --latency-samples and --claim-batch must be at least 1") }
        guard !replicas.isEmpty, replicas.allSatisfy({ (1...16).contains($0) }) else { throw ValidationError("--replicas takes counts from 1 to 16") }
    }

    struct Row: Encodable {
        var measurement: String
        var replicas: Int
        var jobs: Int
        var seconds: Double
        var jobsPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case measurement, replicas, jobs, seconds
            case jobsPerSecond = "jobs_per_second"
        }
    }

    struct Latency: Encodable {
        var samples: Int
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        var maxMilliseconds: Double
        enum CodingKeys: String, CodingKey {
            case samples
            case p50Milliseconds = "p50_ms", p99Milliseconds = "p99_ms", maxMilliseconds = "max_ms"
        }
    }

    func run() async throws {
        let pgbenchPath = try Pgbench.locate()
        let migrations = try Migration.load(directory: try SubmitBench.locateMigrations(explicit: migrationsDirectory))
        let server = try await Server.open(databaseURL: databaseURL)
        do {
            let pool = try PostgresPool(connectionString: server.connectionString, maxConnections: 2)
            try await MigrationRunner(pool: pool, migrations: migrations).migrate()
            try await SubmitBench.emptyTables(pool, targetsToo: true)
            try await TargetRepository(pool: pool).apply([TargetRepository.defaultLocal(home: NSTemporaryDirectory() + "tern-bench-home")])
            var rows: [Row] = []
            for replicaCount in replicas {
                rows.append(try await throughput(replicas: replicaCount, pool: pool, connectionString: server.connectionString))
                rows.append(try await claimCeiling(clients: replicaCount, pool: pool, pgbenchPath: pgbenchPath, connectionString: server.connectionString))
            }
            let latency = try await latency(pool: pool, connectionString: server.connectionString)
            await pool.close()
            server.close()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                struct Output: Encodable { var throughput: [Row]; var latency: Latency }
                print(String(decoding: try encoder.encode(Output(throughput: rows, latency: latency)), as: UTF8.self))
            } else {
                print(table(rows, latency: latency))
            }
        } catch {
            server.close()
            throw error
        }
    }

    // MARK: Throughput

    private func submitJobs(_ count: Int, pool: PostgresPool) async throws {
        let spec = try JobSpecParser.parse("name: bench\nrun: \"true\"\n", file: "bench.yaml").get().spec
        let jobs = (0..<count).map { _ in NewJob(spec: spec) }
        _ = try await JobRepository(pool: pool).submit(jobs)
        // Statistics as autovacuum keeps them on a live table. Without them the planner takes a
        // table filled a moment ago for nearly empty and sorts every pending row for each claim
        // instead of walking the claim index (10× slower; see docs/benchmarks.md).
        try await pool.query("ANALYZE jobs")
    }

    private func throughput(replicas replicaCount: Int, pool: PostgresPool, connectionString: String) async throws -> Row {
        try await SubmitBench.emptyTables(pool)
        progress("submitting \(count) jobs")
        try await submitJobs(count, pool: pool)
        let executor = NoopExecutor()
        var pools: [PostgresPool] = []
        for _ in 0..<replicaCount { pools.append(try PostgresPool(connectionString: connectionString, maxConnections: 2)) }
        let schedulers = pools.enumerated().map { index, replicaPool in
            var configuration = SchedulerConfiguration(replicaID: "bench-\(index)", agentProgram: "/bin/false", agentDatabaseURL: connectionString,
                                                       home: NSTemporaryDirectory())
            configuration.claimBatch = claimBatch
            configuration.pollInterval = .milliseconds(50)
            return Scheduler(pool: replicaPool, configuration: configuration, registry: .only(executor))
        }
        progress("\(replicaCount) replica(s): \(count) jobs pending → succeeded")
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for scheduler in schedulers { group.addTask { try await scheduler.runUntilIdle() } }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - started).seconds
        for replicaPool in pools { await replicaPool.close() }

        let succeeded = try await pool.query("SELECT count(*) FROM jobs WHERE state = 'succeeded'").scalar(Int.self)
        let launches = executor.launchCounts
        guard succeeded == count, launches.count == count, launches.values.allSatisfy({ $0 == 1 }) else {
            throw BenchError("\(succeeded) of \(count) jobs succeeded, \(launches.count) launched, \(launches.values.filter { $0 > 1 }.count) more than once")
        }
        return Row(measurement: "tern scheduler, no-op executor", replicas: replicaCount, jobs: count, seconds: seconds, jobsPerSecond: Double(count) / seconds)
    }

    /// pgbench claiming one pending job per transaction and marking it running: the most any
    /// scheduler doing one claim per job could reach on this server.
    private func claimCeiling(clients: Int, pool: PostgresPool, pgbenchPath: String, connectionString: String) async throws -> Row {
        try await SubmitBench.emptyTables(pool)
        try await submitJobs(count, pool: pool)
        let script = NSTemporaryDirectory() + "tern-bench-claim-\(getpid()).sql"
        try """
            WITH picked AS (
                SELECT id FROM jobs WHERE state = 'pending' AND lease_owner IS NULL
                ORDER BY priority DESC, created_at, submit_seq
                FOR UPDATE SKIP LOCKED LIMIT 1
            )
            UPDATE jobs j SET state = 'running', lease_owner = 'pgbench', lease_epoch = j.lease_epoch + 1, lease_expires_at = now() + interval '30 seconds'
            FROM picked WHERE j.id = picked.id;

            """.write(toFile: script, atomically: true, encoding: .utf8)
        defer { unlink(script) }
        let perClient = count / clients
        progress("pgbench claim ceiling: \(clients) client(s), \(perClient * clients) claims")
        let arguments = ["-n", "-f", script, "-M", "prepared", "-c", String(clients), "-j", String(clients), "-t", String(perClient), connectionString]
        let outcome = try await Spawn.run(pgbenchPath, arguments)
        guard outcome.status == 0, let tps = Pgbench.parseTPS(outcome.output) else {
            throw BenchError("pgbench \(arguments.dropLast().joined(separator: " ")) failed (exit \(outcome.status)):\n\(outcome.output)")
        }
        let claimed = try await pool.query("SELECT count(*) FROM jobs WHERE state = 'running'").scalar(Int.self)
        guard claimed == perClient * clients else { throw BenchError("pgbench claimed \(claimed) jobs, not \(perClient * clients)") }
        return Row(measurement: "pgbench claim ceiling (1 job per transaction)", replicas: clients, jobs: claimed, seconds: Double(claimed) / tps,
                   jobsPerSecond: tps)
    }

    // MARK: Latency

    private func latency(pool: PostgresPool, connectionString: String) async throws -> Latency {
        try await SubmitBench.emptyTables(pool)
        let launched = LaunchTimes()
        let executor = NoopExecutor { key in launched.record(key) }
        let schedulerPool = try PostgresPool(connectionString: connectionString, maxConnections: 2)
        var configuration = SchedulerConfiguration(replicaID: "bench-latency", agentProgram: "/bin/false", agentDatabaseURL: connectionString,
                                                   home: NSTemporaryDirectory())
        // The poll interval is long on purpose: a launch must come from the NOTIFY, not a poll.
        configuration.pollInterval = .seconds(5)
        configuration.orphanScanInterval = .seconds(60)
        let scheduler = Scheduler(pool: schedulerPool, configuration: configuration, registry: .only(executor))
        let running = Task { await scheduler.run(listenOn: connectionString) }
        // Let it start listening and go idle.
        try await Task.sleep(for: .milliseconds(500))
        let spec = try JobSpecParser.parse("name: latency\nrun: \"true\"\n", file: "latency.yaml").get().spec
        let repository = JobRepository(pool: pool)
        progress("submit-to-launch latency: \(latencySamples) jobs, one at a time, scheduler idle")
        var samples: [Double] = []
        for _ in 0..<latencySamples {
            let started = ContinuousClock.now
            let job = try await repository.submit([NewJob(spec: spec)])[0]
            let key = "tern-\(job.id.uuidString.lowercased())-1"
            let at = try await launched.wait(for: key, timeout: .seconds(10))
            samples.append((at - started).seconds * 1000)
            // Idle again before the next one: the job has finished.
            try await Task.sleep(for: .milliseconds(20))
        }
        running.cancel()
        await running.value
        await schedulerPool.close()
        samples.sort()
        func percentile(_ p: Double) -> Double { samples[min(samples.count - 1, Int((p * Double(samples.count)).rounded(.up)) - 1)] }
        return Latency(samples: samples.count, p50Milliseconds: percentile(0.5), p99Milliseconds: percentile(0.99), maxMilliseconds: samples.last ?? 0)
    }

    /// When each key was launched.
    final class LaunchTimes: Sendable {
        private let times = Mutex<[String: ContinuousClock.Instant]>([:])

        func record(_ key: String) { times.withLock { $0[key] = .now } }

        func wait(for key: String, timeout: Duration) async throws -> ContinuousClock.Instant {
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while ContinuousClock.now < deadline {
                if let at = times.withLock({ $0[key] }) { return at }
                try await Task.sleep(for: .microseconds(200))
            }
            throw BenchError("job \(key) was not launched within \(timeout)")
        }
    }

    // MARK: Report

    private func table(_ rows: [Row], latency: Latency) -> String {
        var lines = ["| measurement | replicas / clients | jobs | seconds | jobs/s |", "|---|---:|---:|---:|---:|"]
        for row in rows {
            lines.append(String(format: "| %@ | %d | %d | %.3f | %.0f |", row.measurement, row.replicas, row.jobs, row.seconds, row.jobsPerSecond))
        }
        lines.append("")
        lines.append(String(format: "submit-to-launch, idle scheduler (%d jobs one at a time): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                            latency.samples, latency.p50Milliseconds, latency.p99Milliseconds, latency.maxMilliseconds))
        for row in rows where row.measurement.hasPrefix("tern") {
            let verdict = row.jobsPerSecond >= 1000 ? "met" : "NOT met"
            lines.append(String(format: "goal: ≥ 1000 jobs/s through the lifecycle with %d replica(s): %.0f jobs/s — %@", row.replicas, row.jobsPerSecond, verdict))
        }
        lines.append(String(format: "goal: p99 submit-to-launch < 100 ms when idle: %.1f ms — %@", latency.p99Milliseconds, latency.p99Milliseconds < 100 ? "met" : "NOT met"))
        return lines.joined(separator: "\n")
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("tern-bench: \(line)\n".utf8))
    }
}
