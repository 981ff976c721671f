import ArgumentParser
import Foundation
import TernCheckpoints
import TernControl
import TernExecutors
import TernModel
import TernPostgres
import TernStorage

/// `tern demo`: everything on one machine, end to end.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Try Tern on this machine: a training job that is preempted, fails over, is migrated, and finishes.",
        discussion: """
            Starts the embedded PostgreSQL (under $TERN_HOME, default ./.tern) and registers two targets \
            on this machine, each with its own store: local-a (a file store) and local-b (S3 on a moto \
            server the demo starts, when moto_server is installed; a second file store otherwise). It \
            submits jobspecs/demo.yaml (the example trainer) on them with pre-replication to local-b, \
            runs a scheduler in this process, and then: once a checkpoint is committed and replicated, \
            preempts the attempt on local-a; the job fails over to local-b and resumes there; once it \
            has written a newer checkpoint it is moved back with `tern migrate`; it finishes on local-a. \
            A summary shows each attempt, where it ran, what it resumed from, the bytes moved, and the \
            loss carrying on across the moves. Takes about a minute.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions
    @Option(help: ArgumentHelp("Give up after this long.", valueName: "duration")) var limit = DurationArgument(.seconds(240))

    func run() async throws {
        let connectionString = try await database.connectionString()
        let home = database.ternHome.path
        var moto: DemoMoto?
        defer { moto?.stop() }
        try await database.withPool(migrations: migrations, maxConnections: 4) { pool in
            let report = await DatabaseReport.collect(database: database, migrations: migrations, pool: pool)
            try report.print(json: false)
            fflush(nil)
            if !report.healthy { throw ExitCode(1) }
            let root = (try MigrationsDirectory.locate(explicit: migrations.directory) as NSString).deletingLastPathComponent
            let demoHome = home + "/demo"
            try FileManager.default.createDirectory(atPath: demoHome, withIntermediateDirectories: true)

            // 1. Two "clouds" on this machine.
            moto = await DemoMoto.start(root: root, directory: demoHome)
            var targets = try TargetsFileParser.parse(fileAt: root + "/targets/demo.yaml").mapError { SpecProblems(diagnostics: $0.diagnostics) }.get()
            for index in targets.indices {
                targets[index].storage = "file://\(demoHome)/store-\(targets[index].name.suffix(1))"
                if targets[index].name == "local-b", let moto {
                    targets[index].storage = "s3://\(moto.bucket)/checkpoints"
                    targets[index].storageEndpoint = moto.endpoint
                    targets[index].credentialsFile = moto.credentialsFile
                    targets[index].region = "us-east-1"
                }
            }
            try await TargetRepository(pool: pool).apply(targets)
            say("\ntargets: " + targets.map { "\($0.name) (\($0.storage))" }.joined(separator: ", "))

            // 2. The demo job, on both, with its checkpoints replicated to local-b as they are made.
            var spec = try JobSpecParser.parse(fileAt: root + "/jobspecs/demo.yaml").mapError { SpecProblems(diagnostics: $0.diagnostics) }.get().spec
            spec.placement.targets = ["local-a", "local-b"]
            spec.placement.strategy = .ordered
            spec.checkpoint.replicateTo = ["local-b"]
            let jobs = JobRepository(pool: pool)
            let job = try await jobs.submit([NewJob(spec: spec, workdirBase: root)])[0]
            say("submitted jobspecs/demo.yaml as job \(shortID(job.id)) (\(spec.env["TRAINER_STEPS"] ?? "?") steps, a checkpoint every \(spec.env["TRAINER_CHECKPOINT_EVERY"] ?? "?"))")

            // 3. A scheduler in this process.
            var configuration = SchedulerConfiguration(replicaID: "demo", agentProgram: SchedulerCommand.currentExecutable(),
                                                       agentDatabaseURL: connectionString, home: home)
            configuration.pollInterval = .milliseconds(250)
            configuration.agentHeartbeat = .seconds(1)
            configuration.agentCheckpointPoll = .milliseconds(250)
            configuration.stopGrace = .seconds(15)
            configuration.retryBackoff = .seconds(1)
            configuration.preReplicationInterval = .milliseconds(500)
            configuration.catalogPath = CatalogFile.locate()
            let scheduler = Scheduler(pool: pool, configuration: configuration, registry: .standard(home: home)) { line in
                FileHandle.standardOutput.write(Data("    scheduler: \(line)\n".utf8))
            }
            let running = Task { await scheduler.run(listenOn: connectionString) }
            defer { running.cancel() }
            let story = DemoStory(pool: pool, job: job.id, home: home, limit: limit.duration, scheduler: scheduler)
            try await story.play()
            running.cancel()
            await running.value
            try await story.summary(jobs: jobs)
        }
    }
}

/// The demo's steps, each waiting for what the scheduler and the agents do.
struct DemoStory {
    let pool: PostgresPool
    let job: UUID
    let home: String
    let limit: Duration
    let scheduler: Scheduler
    let started = ContinuousClock.now

    func play() async throws {
        let attempts = AttemptRepository(pool: pool)
        let replicas = ReplicaRepository(pool: pool)
        func committed(on target: String) async throws -> [Int64] {
            try await replicas.replicas(job: job).filter { $0.replica.state == .committed && $0.replica.target == target }.map(\.step)
        }

        say("\n1. training on local-a; waiting for a checkpoint committed there and replicated to local-b")
        try await wait("a checkpoint on both stores") {
            let a = try await committed(on: "local-a"), b = try await committed(on: "local-b")
            return !Set(a).intersection(b).isEmpty
        }
        let both = Set(try await committed(on: "local-a")).intersection(try await committed(on: "local-b"))
        say("   step \(both.max()!) is committed on local-a and, ahead of any failover, on local-b")

        say("\n2. local-a takes its capacity back (a spot preemption): the attempt gets SIGTERM")
        let first = try await attempts.latest(job: job)!
        let targets = try await TargetRepository(pool: pool).definitions()
        try await LocalExecutor(home: home).preempt(AttemptHandle(key: first.key, externalID: first.externalID,
                                                                  target: targets.first { $0.name == "local-a" }!, nodes: 1))
        scheduler.wake()
        try await wait("the job running again on local-b") {
            let latest = try await attempts.latest(job: job)
            return latest?.target == "local-b" && latest?.state == .running
        }
        let second = try await attempts.latest(job: job)!
        say("   failed over to local-b, attempt \(second.number), resuming from \(second.resumeCheckpoint.map { String($0.prefix(12)) } ?? "nothing")")

        say("\n3. once local-b has a checkpoint of its own, move the job back: tern migrate \(shortID(job)) --to local-a --graceful 15s")
        let before = Set(try await committed(on: "local-b"))
        try await wait("a new checkpoint on local-b") { !Set(try await committed(on: "local-b")).subtracting(before).isEmpty }
        let outcome = try await JobRepository(pool: pool).migrate(jobID: job, to: "local-a", grace: .seconds(15))
        say("   \(outcome.message)")
        try await wait("the job to finish") { try await JobRepository(pool: pool).job(id: job).state.isTerminal }
    }

    func wait(_ what: String, until condition: () async throws -> Bool) async throws {
        while try await !condition() {
            if ContinuousClock.now - started > limit {
                throw CommandFailure(message: "the demo waited \(limit) for \(what); see `tern events \(shortID(job))` and `tern logs \(shortID(job))`")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Each attempt: where it ran, how it ended, what it resumed from, the bytes moved for it, and
    /// the loss at its first and last logged step.
    func summary(jobs: JobRepository) async throws {
        let record = try await jobs.job(id: job)
        let attempts = try await AttemptRepository(pool: pool).attempts(job: job)
        let events = try await jobs.events(jobID: job)
        func details(_ event: JobEventRecord) -> [String: Any] {
            guard let text = event.detailsJSON, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return [:] }
            return object as? [String: Any] ?? [:]
        }
        // Steps from the events, not the checkpoints table: checkpoints beyond `keep` are gone by now.
        var stepOf: [String: Int64] = [:]
        for event in events where event.kind == "checkpoint_recorded" {
            let fields = details(event)
            if let id = fields["checkpoint_id"] as? String, let step = (fields["step"] as? NSNumber)?.int64Value { stepOf[id] = step }
        }
        // Bytes moved by placement for each attempt (they are moved before it launches), and the
        // checkpoints pre-replicated before the first failover.
        var movedBefore: [Int: Int64] = [:]
        var attemptIndex = 0
        var preReplicatedBeforeFailover = 0
        for event in events {
            if event.kind == "attempt_launched" { attemptIndex += 1 }
            guard event.kind == "checkpoint_replicated", let message = event.message else { continue }
            if message.contains("(pre-replication)"), attemptIndex < 2 { preReplicatedBeforeFailover += 1 }
            if message.contains("(placement)"), let bytes = (details(event)["bytes_moved"] as? String).flatMap(Int64.init) {
                movedBefore[attemptIndex + 1, default: 0] += bytes
            }
        }
        func stepText(_ checkpoint: String) -> String { "step \(stepOf[checkpoint].map(String.init) ?? "?") (\(checkpoint.prefix(12)))" }
        var rows: [[String]] = [["#", "TARGET", "ENDED", "RESUMED FROM", "BYTES MOVED BEFORE", "FIRST LOSS", "LAST LOSS"]]
        for attempt in attempts {
            let log = (try? String(contentsOfFile: home + "/local/\(attempt.target)/attempts/\(attempt.key)/node-0.log", encoding: .utf8)) ?? ""
            let losses = log.split(separator: "\n").filter { $0.hasPrefix("step ") && $0.contains(" loss ") }
            rows.append([String(attempt.number), attempt.target, attempt.state.rawValue + (attempt.endReason.map { " (\($0))" } ?? ""),
                         attempt.resumeCheckpoint.map(stepText) ?? "fresh start",
                         byteText(movedBefore[attempt.number] ?? 0), losses.first.map(String.init) ?? "-", losses.last.map(String.init) ?? "-"])
        }
        // What the failover (attempt 2) cost, said from what happened rather than assumed.
        let failover = attempts.first { $0.number == 2 }
        let failoverMoved = movedBefore[2] ?? 0
        let failoverText: String
        if failoverMoved == 0 {
            failoverText = "so the failover moved no checkpoint bytes"
        } else {
            let resumed = failover?.resumeCheckpoint.map(stepText) ?? "its checkpoint"
            failoverText = "and the failover moved only \(byteText(failoverMoved)): \(resumed), the newest checkpoint, committed on local-a after the last pre-replication had run"
        }
        say("\njob \(shortID(job)) \(record.name): \(record.state.rawValue) in \(String(format: "%.0f", (ContinuousClock.now - started).secondsValue))s\n")
        say(formatTable(rows))
        say("""

            Before the preemption \(preReplicatedBeforeFailover) checkpoint(s) had been replicated to local-b ahead of time, \(failoverText). \
            Each attempt picked up at the step after the checkpoint it resumed from, and the loss carries on from where it was.
            More: `tern show \(shortID(job))`, `tern events \(shortID(job))`, `tern checkpoint status \(shortID(job))`, `tern logs \(shortID(job)) --attempt 2`.
            """)
        if record.state != .succeeded { throw CommandFailure(message: "the demo job ended \(record.state.rawValue): see `tern events \(shortID(job))`") }
    }
}

/// A moto S3 server for the demo's second "cloud", on a free port, stopped by its PID. Nil when
/// moto_server is not installed (the demo then uses a second file store).
struct DemoMoto {
    let pid: pid_t
    let endpoint: String
    let credentialsFile: String
    /// A new bucket each run: moto keeps nothing between runs, while the database remembers what
    /// earlier runs committed (a store that forgot would be caught, but the demo shows the normal case).
    let bucket: String

    static func start(root: String, directory: String) async -> DemoMoto? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard let program = path.split(separator: ":").map({ "\($0)/moto_server" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
              let port = try? LocalPort.free() else { return nil }
        // The tests' patches: a real CRC-32C for moto's checksums and S3's canonical request rules.
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = root + "/Tests/TernStorageTests/Fixtures/s3/moto-support:" + root + "/.venv-tools/moto-crc32c"
        environment.removeValue(forKey: "AWS_CA_BUNDLE")
        guard let pid = try? ProcessControl.spawn(program, ["-H", "127.0.0.1", "-p", String(port)],
                                                  environment: environment.map { "\($0.key)=\($0.value)" },
                                                  outputPath: directory + "/moto.log", detach: .processGroup) else { return nil }
        ProcessControl.reap(pid)
        let endpoint = "http://127.0.0.1:\(port)"
        let credentials = directory + "/moto-credentials"
        // moto checks no signature here; the keys only have to exist.
        try? "[default]\naws_access_key_id = demo\naws_secret_access_key = demo-secret\n".write(toFile: credentials, atomically: true, encoding: .utf8)
        let bucket = "tern-demo-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        for _ in 0..<150 {
            if LocalPort.accepts(port), await DemoMoto.createBucket(bucket, endpoint: endpoint) {
                return DemoMoto(pid: pid, endpoint: endpoint, credentialsFile: credentials, bucket: bucket)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        ProcessControl.signalGroup(pid, SIGKILL)
        return nil
    }

    func stop() {
        ProcessControl.signalGroup(pid, SIGTERM)
    }

    /// PUT /BUCKET.
    static func createBucket(_ bucket: String, endpoint: String) async -> Bool {
        guard let url = HTTPURL(string: endpoint + "/" + bucket),
              let response = try? await HTTPClient().execute(HTTPRequest(method: "PUT", url: url)) else { return false }
        return response.isSuccess
    }
}

/// Free ports and reachability on the loopback.
enum LocalPort {
    static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CommandFailure(message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw CommandFailure(message: "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// The demo's own lines, unbuffered, so they stay in order with the scheduler's.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
