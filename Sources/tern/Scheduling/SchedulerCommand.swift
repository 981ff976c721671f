import ArgumentParser
import Dispatch
import Foundation
import TernControl
import TernExecutors
import TernModel
import TernPostgres

/// `tern scheduler`: one scheduler replica.
struct SchedulerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Run a scheduler replica: place pending jobs, launch and watch their attempts, recover them.",
        discussion: """
            Claims pending jobs (several replicas may run against one database; each job is driven \
            by one at a time, fenced by a lease), places each on the first target of its spec that \
            fits, launches it through the target's executor (local processes or Slurm), watches it, \
            applies the spec's recovery policy and records every transition in the job's events. \
            It wakes on new submissions and cancels (LISTEN/NOTIFY) and polls as well. SIGTERM or \
            Ctrl-C stops it gracefully: running attempts keep running, and their jobs are handed \
            back for another replica to adopt. With --once it drives the jobs it can claim until \
            they finish, then exits. See docs/scheduler.md.
            """)

    @Option(name: .customLong("replica-id"), help: ArgumentHelp("This replica's name in leases and events (the host and pid are added). Default: scheduler.", valueName: "id"))
    var replicaID = "scheduler"

    @Flag(help: "Drive the jobs that can be claimed now until they finish, then exit.") var once = false

    @Option(name: .customLong("poll-interval"), help: ArgumentHelp("How often live attempts are asked for their status.", valueName: "duration"))
    var pollInterval = DurationArgument(.seconds(1))

    @Option(help: ArgumentHelp("How long a claim on a job lasts without renewal.", valueName: "duration"))
    var lease = DurationArgument(.seconds(30))

    @Option(help: ArgumentHelp("How long a stopping attempt gets to checkpoint and exit before it is killed.", valueName: "duration"))
    var grace = DurationArgument(.seconds(30))

    @Option(name: .customLong("heartbeat"), help: ArgumentHelp("How often agents heartbeat.", valueName: "duration"))
    var heartbeat = DurationArgument(.seconds(5))

    @Option(name: .customLong("heartbeat-timeout"), help: ArgumentHelp("A running attempt silent for this long is lost.", valueName: "duration"))
    var heartbeatTimeout = DurationArgument(.seconds(60))

    @Option(name: .customLong("retry-backoff"), help: ArgumentHelp("The first wait before retrying a job that exited with a retryable code; it doubles per retry, up to 5m.", valueName: "duration"))
    var retryBackoff = DurationArgument(.seconds(5))

    @Option(name: .customLong("checkpoint-poll"), help: ArgumentHelp("How often agents look for newly complete checkpoints.", valueName: "duration"))
    var checkpointPoll = DurationArgument(.seconds(1))

    @Flag(help: "Print nothing but errors.") var quiet = false

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if pollInterval.duration <= .zero || lease.duration < .seconds(1) || heartbeat.duration <= .zero {
            throw ValidationError("--poll-interval and --heartbeat must be longer than zero, --lease at least 1s")
        }
        if heartbeatTimeout.duration <= heartbeat.duration { throw ValidationError("--heartbeat-timeout must be longer than --heartbeat") }
    }

    func run() async throws {
        let connectionString = try await database.connectionString()
        try await database.withPool(migrations: migrations, maxConnections: 4) { pool in
            let home = database.ternHome.path
            var configuration = SchedulerConfiguration(
                replicaID: replicaID, agentProgram: Self.currentExecutable(), agentDatabaseURL: connectionString, home: home)
            configuration.pollInterval = pollInterval.duration
            configuration.leaseDuration = lease.duration
            configuration.stopGrace = grace.duration
            configuration.agentHeartbeat = heartbeat.duration
            configuration.heartbeatTimeout = heartbeatTimeout.duration
            configuration.retryBackoff = retryBackoff.duration
            configuration.agentCheckpointPoll = checkpointPoll.duration
            configuration.faultPoint = Self.crashPoint()
            configuration.catalogPath = CatalogFile.locate()
            let quiet = quiet
            let scheduler = Scheduler(pool: pool, configuration: configuration, registry: .standard(home: home)) { line in
                if !quiet { Self.log(line) }
            }
            if once {
                try await scheduler.runUntilIdle()
                return
            }
            let running = Task { await scheduler.run(listenOn: connectionString) }
            let stop = StopSignals { running.cancel() }
            await running.value
            stop.cancel()
        }
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data("\(Date().formatted(.iso8601)) tern-scheduler: \(line)\n".utf8))
    }

    /// The program running now, which nodes run again as `tern agent`.
    static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// For crash tests: `TERN_CRASH_AT=scheduler:<point>` (after-claim, after-attempt-row, after-launch,
    /// after-record) kills the scheduler with SIGKILL there, as a real crash would.
    static func crashPoint() -> (@Sendable (String) -> Void)? {
        guard let wanted = ProcessInfo.processInfo.environment["TERN_CRASH_AT"], wanted.hasPrefix("scheduler:") else { return nil }
        let point = String(wanted.dropFirst("scheduler:".count))
        return { reached in
            if reached == point { kill(getpid(), SIGKILL) }
        }
    }
}

/// SIGTERM and SIGINT call `handler` once (on a dispatch queue, not in a signal handler).
final class StopSignals: @unchecked Sendable {
    // Dispatch sources are thread-safe; they are only resumed and cancelled here.
    private var sources: [any DispatchSourceSignal] = []

    init(_ handler: @escaping @Sendable () -> Void) {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
