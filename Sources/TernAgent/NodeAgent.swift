public import Foundation
import CTernSystem
import Dispatch
import Glibc
import Synchronization
import TernCheckpoints
import TernControl
public import TernExecutors
import TernModel
import TernPostgres
import TernStorage

/// `tern agent`: the wrapper every node of an attempt runs around the user's command (DESIGN §7).
///
/// 1. reads the attempt's plan (`attempt.json`) and works out its rank and the rendezvous address;
/// 2. restores `TERN_RESUME_FROM` from the target's store, checking every chunk's SHA-256 while
///    reading (rank 0; the other ranks wait for it), and refuses a copy that is not committed;
/// 3. runs `setup`, then `run`, in a process group of its own, output to the node's log;
/// 4. on rank 0, seals each newly complete step directory and commits it on the target's store;
/// 5. heartbeats the attempt, and stops the job if the attempt is no longer live in the database;
/// 6. on SIGTERM (a stop or a preemption notice) sends the job SIGUSR1, a checkpoint request, waits
///    for that checkpoint within the grace period, then SIGTERM, then SIGKILL;
/// 7. ends every process the job left behind (it is their subreaper), publishes the last
///    checkpoints, writes `node-<r>.result` and exits with the job's status.
public struct NodeAgent: Sendable {
    public let directory: AttemptDirectory
    /// The rank given on the command line; nil to take it from the cluster (`SLURM_NODEID`).
    public let rank: Int?
    public let environment: [String: String]

    public init(directory: AttemptDirectory, rank: Int?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.directory = directory
        self.rank = rank
        self.environment = environment
    }

    /// Runs the node's part of the attempt and returns the exit status the agent should end with.
    public func run() async -> Int32 {
        let plan: AttemptPlan
        do {
            plan = try directory.readPlan()
        } catch {
            AgentLog.write("cannot read the attempt plan \(directory.planFile): \(error)")
            return 2
        }
        let node = rank ?? environment["SLURM_NODEID"].flatMap(Int.init) ?? 0
        do {
            return try await Session(plan: plan, directory: directory, explicitRank: rank, environment: environment).run()
        } catch {
            AgentLog.write("\(error)")
            try? directory.writeResult(NodeResult(phase: .agent, exitCode: 2, message: "\(error)"), node: node)
            return 2
        }
    }
}

/// The agent's lines in the node log: prefixed, flushed, never a secret.
enum AgentLog {
    static func write(_ line: String) {
        FileHandle.standardOutput.write(Data("tern-agent: \(line)\n".utf8))
    }
}

/// One run of the agent.
private struct Session {
    let plan: AttemptPlan
    let directory: AttemptDirectory
    let explicitRank: Int?
    let environment: [String: String]

    func run() async throws -> Int32 {
        let topology = try NodeEnvironment.topology(plan: plan, explicitRank: explicitRank, environment: environment)
        let rank = topology.rank
        let log: @Sendable (String) -> Void = { AgentLog.write($0) }
        log("node \(rank) of \(plan.nodes), attempt \(plan.attemptNumber) of job \(plan.jobName) (\(plan.jobID.uuidString.lowercased().prefix(8))) on \(plan.target)")
        // Descendants the job orphans come to us, so none outlives the attempt.
        if tern_become_child_subreaper() != 0 { log("warning: cannot become the job's subreaper; processes it detaches may outlive it") }

        guard let connection = environment["TERN_DATABASE_URL"], !connection.isEmpty else {
            throw AgentFailure("TERN_DATABASE_URL is not set: the agent needs the database to heartbeat and record checkpoints")
        }
        let pool = try PostgresPool(connectionString: connection, maxConnections: 3)
        defer { Task { await pool.close() } }
        let storeURL = try StoreURL(parsing: plan.storage)
        let store = try BlobStores.open(storeURL, options: StoreOptions(endpoint: plan.storageEndpoint, environment: environment, credentialsFile: plan.credentialsFile, region: plan.storageRegion))

        let control = StopControl()
        let signals = SignalWatch(control: control, log: log)
        defer { signals.cancel() }
        let heartbeat = Task { await heartbeatLoop(pool: pool, control: control, log: log) }
        defer { heartbeat.cancel() }

        // 1. The checkpoint to resume from.
        var resumePath = ""
        if let resume = plan.resume {
            resumePath = directory.resumeDirectory
            if let failure = try await restore(resume, rank: rank, store: store, storeURL: storeURL, pool: pool, control: control, log: log) {
                try directory.writeResult(NodeResult(phase: .restore, exitCode: 3, message: failure), node: rank)
                return 3
            }
        }
        if let reason = control.reason {
            return try finish(phase: reason == .leaseLost ? .leaseLost : .run, code: 143, rank: rank, message: "stopped before the job started", log: log)
        }

        let (jobEnvironment, missing) = NodeEnvironment.make(plan: plan, topology: topology, directory: directory, resumePath: resumePath,
                                                             inherited: environment)
        if !missing.isEmpty { log("warning: secrets not set where the attempt was launched: \(missing.joined(separator: ", "))") }
        try FileManager.default.createDirectory(atPath: directory.checkpointDirectory(plan.checkpointDirectory), withIntermediateDirectories: true)

        // 2. setup, then run.
        if let setup = plan.setup {
            log("setup: starting")
            let code = try await runCommand(setup, environment: jobEnvironment, rank: rank, control: control, publisher: nil, log: log)
            if code != 0 {
                if let reason = control.reason { return try finish(phase: reason == .leaseLost ? .leaseLost : .run, code: code, rank: rank, message: "stopped during setup", log: log) }
                log("setup exited with code \(code)")
                return try finish(phase: .setup, code: code, rank: rank, message: nil, log: log)
            }
        }
        let publisher: CheckpointPublisher? = rank == 0
            ? CheckpointPublisher(plan: plan, root: directory.checkpointDirectory(plan.checkpointDirectory), pool: pool, store: store,
                                  storeURL: storeURL, replicator: "agent@\(Self.hostName()):\(getpid())", log: log)
            : nil
        log("run: starting")
        let code = try await runCommand(plan.run, environment: jobEnvironment, rank: rank, control: control, publisher: publisher, log: log)
        log("run exited with code \(code)")

        // 3. The last checkpoints: all of them after a normal end, what fits in the grace period after a stop.
        if let publisher {
            let deadline = control.stopDeadline(grace: directory.stopGrace() ?? plan.graceSeconds)
            await publisher.scan(until: deadline)
        }
        let phase: NodeResult.Phase = control.reason == .leaseLost ? .leaseLost : .run
        return try finish(phase: phase, code: code, rank: rank, message: nil, log: log)
    }

    private func finish(phase: NodeResult.Phase, code: Int32, rank: Int, message: String?, log: @Sendable (String) -> Void) throws -> Int32 {
        try directory.writeResult(NodeResult(phase: phase, exitCode: code, message: message), node: rank)
        return code
    }

    // MARK: Restore

    /// Restores the resume checkpoint (rank 0) or waits for rank 0 to have done so. Returns why it
    /// failed, or nil.
    private func restore(_ resume: ResumePoint, rank: Int, store: any BlobStore, storeURL: StoreURL, pool: PostgresPool,
                         control: StopControl, log: @Sendable (String) -> Void) async throws -> String? {
        if rank != 0 {
            while true {
                if FileManager.default.fileExists(atPath: directory.restoredFile) { return nil }
                if let result = directory.result(node: 0), result.phase != .run { return "rank 0 could not restore the checkpoint" }
                if control.reason != nil { return nil }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        if FileManager.default.fileExists(atPath: directory.restoredFile) { return nil }
        let started = ContinuousClock.now
        log("restoring checkpoint \(resume.checkpointID.prefix(12)) (step \(resume.step)) from \(storeURL)")
        let replicator = Replicator(store: store)
        do {
            // A partial restore from a run that was killed is discarded, never trusted.
            try? FileManager.default.removeItem(atPath: directory.resumeDirectory)
            let restored = try await replicator.restore(id: resume.checkpointID, to: directory.resumeDirectory)
            try AttemptDirectory.writeAtomically(Data("\(resume.checkpointID)\n".utf8), to: directory.restoredFile)
            log(String(format: "restored %@: %d files, %lld bytes, every chunk verified, %.2fs", String(resume.checkpointID.prefix(12)),
                       restored.manifest.files.count, restored.manifest.totalBytes, (ContinuousClock.now - started).secondsValue))
            return nil
        } catch {
            let reason = "\(error)"
            log("cannot restore checkpoint \(resume.checkpointID.prefix(12)): \(reason)")
            // A copy that fails its hashes must never be resumed from again: demote it.
            if let bad = error as? CheckpointError, bad.storeCopyIsBad {
                let journal = ReplicaRepository(pool: pool).journal(checkpointID: resume.checkpointID, store: storeURL, target: plan.target,
                                                                    replicator: "agent@\(Self.hostName()):\(getpid())")
                do {
                    try await replicator.demote(resume.checkpointID, journal: journal, reason: reason)
                    log("demoted the copy on \(plan.target) to corrupt")
                } catch {
                    log("could not demote the copy: \(error)")
                }
            }
            return reason
        }
    }

    // MARK: Running a command

    /// Runs `command` with `/bin/sh -c` in `workdir`, in a process group of its own, and waits for
    /// it, handling stop requests and (with a publisher) publishing checkpoints while it runs.
    private func runCommand(_ command: String, environment: [String: String], rank: Int, control: StopControl,
                            publisher: CheckpointPublisher?, log: @escaping @Sendable (String) -> Void) async throws -> Int32 {
        let pid = try ProcessControl.spawn(
            "/bin/sh", ["-c", "cd -- \"$0\" && exec /bin/sh -c \"$1\"", plan.workdir, command],
            environment: environment.map { "\($0.key)=\($0.value)" }, outputPath: directory.logFile(node: rank), detach: .processGroup)
        try AttemptDirectory.writeAtomically(Data("\(pid)\n".utf8), to: directory.jobGroupFile(node: rank))
        control.jobStarted(group: pid)

        let exited = Mutex(false)
        let watcher = Task {
            guard let publisher else { return }
            while !Task.isCancelled && !exited.withLock({ $0 }) {
                if await publisher.scan() > 0 { control.checkpointCommitted() }
                try? await Task.sleep(for: .seconds(plan.checkpointPollSeconds))
            }
        }
        let stopper = Task { await stopWhenAsked(group: pid, control: control, log: log) }
        let code = await ProcessControl.wait(pid)
        exited.withLock { $0 = true }
        stopper.cancel()
        watcher.cancel()
        _ = await watcher.value
        control.jobEnded()
        await endLeftovers(group: pid, log: log)
        return code
    }

    /// Waits for a stop request, then: SIGUSR1 (checkpoint now), wait for a new committed
    /// checkpoint or half the grace period, SIGTERM, wait out the grace period, SIGKILL.
    private func stopWhenAsked(group: pid_t, control: StopControl, log: @Sendable (String) -> Void) async {
        guard let reason = await control.waitForStop() else { return }
        // The stop request may carry its own grace period (`tern migrate --graceful D`).
        let seconds = directory.stopGrace() ?? plan.graceSeconds
        let grace = Duration.milliseconds(Int64(seconds * 1000))
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        log("stop requested (\(reason.rawValue)): asking the job for a checkpoint (SIGUSR1), \(Int(seconds))s grace")
        let committedBefore = control.committedCheckpoints
        ProcessControl.signalGroup(group, SIGUSR1)
        let halfway = clock.now.advanced(by: grace / 2)
        while clock.now < halfway && control.committedCheckpoints == committedBefore && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
        }
        if Task.isCancelled { return }
        log("sending the job SIGTERM")
        ProcessControl.signalGroup(group, SIGTERM)
        while clock.now < deadline && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
        }
        if Task.isCancelled { return }
        log("the grace period is over: SIGKILL")
        ProcessControl.signalGroup(group, SIGKILL)
    }

    /// Ends what the job left running: its process group, then every process reparented to the
    /// agent (descendants that left the group), until none is left.
    private func endLeftovers(group: pid_t, log: @Sendable (String) -> Void) async {
        if ProcessControl.signalGroup(group, SIGTERM) {
            for _ in 0..<20 where ProcessControl.signalGroup(group, 0) {
                try? await Task.sleep(for: .milliseconds(50))
            }
            ProcessControl.signalGroup(group, SIGKILL)
        }
        let me = getpid()
        for _ in 0..<100 {
            // The reaper threads of earlier waits have taken our own children; what is left here
            // are orphans the kernel reparented to us as their subreaper.
            let orphans = ProcessControl.children(of: me).filter { ProcessControl.isRunning($0, startTime: nil) }
            var status: Int32 = 0
            while waitpid(-1, &status, WNOHANG) > 0 {}
            if orphans.isEmpty { return }
            log("ending \(orphans.count) process(es) the job left behind")
            for orphan in orphans { ProcessControl.signalProcess(orphan, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: Heartbeat

    private func heartbeatLoop(pool: PostgresPool, control: StopControl, log: @Sendable (String) -> Void) async {
        var failing = false
        while !Task.isCancelled {
            do {
                let live = try await AttemptRepository(pool: pool).heartbeat(attemptID: plan.attemptID)
                if failing { log("heartbeat: the database answers again") }
                failing = false
                if !live {
                    log("the attempt is no longer live in the database (the scheduler ended it); stopping the job")
                    control.requestStop(.leaseLost)
                    return
                }
            } catch {
                if !failing { log("heartbeat failed: \(error); retrying") }
                failing = true
            }
            try? await Task.sleep(for: .seconds(plan.heartbeatSeconds))
        }
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why the agent is stopping the job.
enum StopReason: String, Sendable {
    /// SIGTERM or SIGINT: Tern (or the cluster) asked the attempt to stop, or a preemption notice.
    case signal
    /// The attempt is no longer live in the database.
    case leaseLost = "lease_lost"
}

/// The agent's shared stop state: whether a stop was asked and when, and checkpoint progress.
final class StopControl: Sendable {
    private struct State {
        var reason: StopReason?
        var requestedAt: ContinuousClock.Instant?
        var waiters: [CheckedContinuation<StopReason?, Never>] = []
        var committed = 0
        var jobRunning = false
    }

    private let state = Mutex(State())

    var reason: StopReason? { state.withLock { $0.reason } }
    var committedCheckpoints: Int { state.withLock { $0.committed } }

    func requestStop(_ reason: StopReason) {
        let waiters = state.withLock { state -> [CheckedContinuation<StopReason?, Never>] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            state.requestedAt = .now
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    /// Returns the reason once a stop is asked, or nil when the waiting task is cancelled.
    func waitForStop() async -> StopReason? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> StopReason? in
                    if let reason = state.reason { return reason }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiters = state.withLock { state -> [CheckedContinuation<StopReason?, Never>] in
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: nil) }
        }
    }

    func checkpointCommitted() { state.withLock { $0.committed += 1 } }
    func jobStarted(group: pid_t) { state.withLock { $0.jobRunning = true } }
    func jobEnded() { state.withLock { $0.jobRunning = false } }

    /// When the grace period of a stop ends, or nil without a stop (no deadline).
    func stopDeadline(grace: Double) -> ContinuousClock.Instant? {
        state.withLock { $0.requestedAt }.map { $0.advanced(by: .milliseconds(Int64(grace * 1000))) }
    }
}

/// SIGTERM and SIGINT become stop requests (handled on a dispatch queue, never in a signal handler).
final class SignalWatch {
    private let sources: [any DispatchSourceSignal]

    init(control: StopControl, log: @escaping @Sendable (String) -> Void) {
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                log("received \(number == SIGTERM ? "SIGTERM" : "SIGINT")")
                control.requestStop(.signal)
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
