import Foundation
import Glibc
import Synchronization
import TernExecutors
import TernModel
public import TernPostgres
import TernStorage

/// One scheduler replica (`tern scheduler`): claims jobs, places them, launches their attempts
/// through the executors, watches them, applies the recovery policy, and records every
/// transition with its reason. Several replicas may run against one database at once.
///
/// The rules that make that safe (DESIGN §4):
/// - a claim is one statement (`FOR UPDATE SKIP LOCKED`) that bumps the job's lease epoch, and
///   every later write carries `lease_owner = me AND lease_epoch = mine`: a replica whose lease was
///   taken over touches no row and drops the job (fencing);
/// - the attempt row, with its idempotency key, is written before the executor is called, and the
///   executors' launch is idempotent by that key, so a replica that takes a job over finishes or
///   adopts the launch instead of starting a second one;
/// - no transaction is open across an executor call; time is the database's.
///
/// Each tick works in batches (one statement claims, one reads, one places, one records reports)
/// so thousands of jobs cost a handful of round trips.
public actor Scheduler {
    let pool: PostgresPool
    let configuration: SchedulerConfiguration
    let registry: ExecutorRegistry
    let store: SchedulerStore
    let log: @Sendable (String) -> Void
    /// This replica's name in `jobs.lease_owner`: `<replica-id>@<host>:<pid>`.
    public nonisolated let leaseOwner: String

    /// The jobs we hold, with the epoch of our claim.
    private var owned: [UUID: Int64] = [:]
    private var specs: [UUID: JobSpec] = [:]
    private var lastRenewal = ContinuousClock.now
    private var lastOrphanScan: ContinuousClock.Instant?
    private var lastPolled: [UUID: ContinuousClock.Instant] = [:]
    private var lastStopSent: [UUID: ContinuousClock.Instant] = [:]
    private var targets: [String: TargetDefinition] = [:]
    private var targetsLoadedAt: ContinuousClock.Instant?
    private let waker = Waker()

    public init(pool: PostgresPool, configuration: SchedulerConfiguration, registry: ExecutorRegistry,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.pool = pool
        self.configuration = configuration
        self.registry = registry
        self.log = log
        leaseOwner = "\(configuration.replicaID)@\(Self.hostName()):\(getpid())"
        store = SchedulerStore(pool: pool, owner: leaseOwner, leaseSeconds: configuration.leaseDuration.secondsValue)
    }

    // MARK: Running

    /// Runs until the calling task is cancelled (SIGTERM, Ctrl-C), then gives every lease back so
    /// another replica adopts the jobs at once. Wakes on `NOTIFY tern_jobs` (a submission, a
    /// cancel, a move) when given the connection string to listen with, and polls regardless.
    public func run(listenOn connectionString: String?) async {
        let listener: Task<Void, Never>? = connectionString.map { connectionString in
            Task { [waker] in
                do {
                    for try await _ in PostgresListener.events(connectionString: connectionString, channels: [JobRepository.schedulerChannel]) {
                        waker.wake()
                    }
                } catch {}
            }
        }
        defer { listener?.cancel() }
        log("scheduler \(leaseOwner) started")
        while !Task.isCancelled {
            let progressed: Bool
            do {
                progressed = try await tick()
            } catch is CancellationError {
                break
            } catch {
                log("tick failed: \(error); retrying")
                progressed = false
            }
            if !progressed { await waker.wait(for: idleWait) }
        }
        // Give the jobs back even though this task is cancelled.
        await Task { [store] in try? await store.releaseAll() }.value
        log("scheduler \(leaseOwner) stopped; its \(owned.count) job(s) are released to other replicas")
    }

    /// Runs until this replica holds no job and none is left to claim (`tern scheduler --once`):
    /// every job it claimed has finished. Jobs other replicas hold are left to them.
    public func runUntilIdle() async throws {
        while !Task.isCancelled {
            let progressed = try await tick()
            if owned.isEmpty && !progressed { return }
            if !progressed { await waker.wait(for: idleWait) }
        }
    }

    /// Wakes the loop now (tests use it instead of waiting for a poll).
    public nonisolated func wake() { waker.wake() }

    /// The jobs this replica holds.
    public var ownedJobs: Int { owned.count }

    private var idleWait: Duration { owned.isEmpty ? configuration.orphanScanInterval : configuration.pollInterval }

    // MARK: One tick

    /// One round: renew, adopt orphans, claim, then act on every job held. Returns whether anything
    /// changed (so the loop runs again at once instead of waiting).
    @discardableResult
    public func tick() async throws -> Bool {
        var progressed = false
        let clock = ContinuousClock()
        if clock.now - lastRenewal >= configuration.leaseDuration / 3 {
            let kept = try await store.renew(owned.map { ($0.key, $0.value) })
            for id in owned.keys where !kept.contains(id) { forget(id) }
            lastRenewal = clock.now
        }
        if lastOrphanScan.map({ clock.now - $0 >= configuration.orphanScanInterval }) ?? true {
            lastOrphanScan = clock.now
            let dead = try await store.liveOwners().filter(Self.isDeadLocalOwner)
            let room = configuration.maxOwnedJobs - owned.count
            if room > 0 {
                let adopted = try await store.claimOrphans(limit: min(room, configuration.claimBatch), deadOwners: dead)
                for (id, epoch) in adopted { owned[id] = epoch }
                if !adopted.isEmpty {
                    log("adopted \(adopted.count) job(s) from replicas that are gone")
                    progressed = true
                }
            }
        }
        let room = configuration.maxOwnedJobs - owned.count
        if room > 0 {
            let claimed = try await store.claimPending(limit: min(room, configuration.claimBatch))
            for (id, epoch) in claimed { owned[id] = epoch }
            if !claimed.isEmpty {
                progressed = true
                configuration.faultPoint?("after-claim")
            }
        }
        if owned.isEmpty { return progressed }

        let jobs = try await store.load(owned.map { ($0.key, $0.value) }, heartbeatTimeout: configuration.heartbeatTimeout.secondsValue, specs: specs)
        let present = Set(jobs.map(\.id))
        for id in owned.keys where !present.contains(id) { forget(id) }
        for job in jobs where specs[job.id] == nil { specs[job.id] = job.spec }

        var writes: [JobWrite] = []
        var toPlace: [OwnedJob] = []
        var toLaunch: [(OwnedJob, LiveAttempt)] = []
        var toPoll: [(OwnedJob, LiveAttempt, StopCause?)] = []
        for job in jobs {
            if job.state.isTerminal {
                forget(job.id)
                continue
            }
            let stop = SchedulerDecisions.stopCause(for: job)
            guard let live = job.live else {
                switch job.state {
                case .pending, .recovering:
                    if let timeout = job.spec.timeout, let seconds = job.runningSeconds, seconds > Double(timeout.seconds) {
                        if let write = SchedulerDecisions.jobOnly(.timedOut, job: job, message: "ran past its timeout of \(timeout)") { writes.append(write) }
                    } else if job.placementDue {
                        toPlace.append(job)
                    }
                case .migrating:
                    toPlace.append(job)
                case .cancelling:
                    if let write = SchedulerDecisions.jobOnly(.attemptStopped, job: job, message: "no attempt was running") { writes.append(write) }
                case .starting, .running:
                    // Its attempt ended but the job did not follow (written by an older Tern, or by hand):
                    // treat it as lost so the recovery policy decides.
                    let event = JobEvent.attemptInterrupted(.lost, restartBudgetLeft: job.preemptions < job.spec.recovery.maxPreemptions)
                    if var write = SchedulerDecisions.jobOnly(event, job: job, message: "the job had no live attempt") {
                        write.preemptionsDelta = 1
                        writes.append(write)
                    }
                case .succeeded, .failed, .cancelled: break
                }
                continue
            }
            if live.externalID == nil && stop == nil {
                toLaunch.append((job, live))
            } else if live.heartbeatStale && stop == nil {
                // The agent went silent: end the attempt here, stop what may be left of it, recover.
                let status = ExecutorStatus.nodeLost(message: "no heartbeat for over \(Int(configuration.heartbeatTimeout.secondsValue))s")
                if var write = SchedulerDecisions.report(status, externalID: nil, job: job, attempt: live, stopCause: nil, backoff: backoff) {
                    write.attempt?.endReason = FailureReason.heartbeatExpired.rawValue
                    write.eventReason = write.jobReason ?? FailureReason.heartbeatExpired.rawValue
                    writes.append(write)
                }
                if let target = targets[live.target], let executor = registry.executor(for: target) {
                    try? await executor.stop(handle(live, target: target, nodes: job.spec.nodes), grace: .zero)
                }
            } else if stop != nil || lastPolled[live.id].map({ clock.now - $0 >= configuration.pollInterval }) ?? true {
                toPoll.append((job, live, stop))
            }
        }

        try await refreshTargets(force: !toPlace.isEmpty && targetsLoadedAt.map { clock.now - $0 > .seconds(5) } ?? true)

        // Placement: new attempt rows first (before any executor is called).
        if !toPlace.isEmpty {
            let (placements, failures) = try await plan(toPlace)
            writes += failures
            let placed = try await store.place(placements, scheduler: configuration.replicaID)
            if !placements.isEmpty { progressed = true }
            configuration.faultPoint?("after-attempt-row")
            for placement in placements where placed.contains(placement.jobID) {
                guard var job = toPlace.first(where: { $0.id == placement.jobID }) else { continue }
                let live = LiveAttempt(id: placement.attemptID, number: placement.number, key: placement.key, target: placement.target,
                                       state: .launching, externalID: nil, heartbeatStale: false, resume: placement.resume)
                job.state = .starting
                job.live = live
                job.attempts = placement.number
                toLaunch.append((job, live))
                log("job \(job.name) (\(job.id.uuidString.lowercased().prefix(8))): attempt \(placement.number) → \(placement.target)\(placement.resume.map { ", resuming from step \($0.step)" } ?? "")")
            }
        }

        // Launch (idempotent by key), then ask for the status of what was launched at once.
        if !toLaunch.isEmpty {
            let launched = await launch(toLaunch)
            configuration.faultPoint?("after-launch")
            for (job, live, result) in launched {
                switch result {
                case .success(let externalID):
                    var updated = live
                    updated.externalID = externalID
                    toPoll.append((job, updated, nil))
                    progressed = true
                case .failure(let error):
                    let status: ExecutorStatus
                    switch error.kind {
                    case .capacity: status = .launchFailed(.capacity, message: error.message)
                    case .refused: status = .launchFailed(.error, message: error.message)
                    case .transient:
                        log("launching \(live.key) failed for now: \(error.message); retrying")
                        continue
                    }
                    if let write = SchedulerDecisions.report(status, externalID: nil, job: job, attempt: live, stopCause: nil, backoff: backoff) {
                        writes.append(write)
                    }
                }
            }
        }

        // Status of live attempts (and stops for the jobs being cancelled, moved or timed out).
        if !toPoll.isEmpty {
            writes += await poll(toPoll)
        }

        if !writes.isEmpty {
            let applied = try await store.apply(writes)
            configuration.faultPoint?("after-record")
            for write in writes where applied.contains(write.jobID) {
                if write.from != write.to {
                    log("job \(write.jobID.uuidString.lowercased().prefix(8)): \(write.from.rawValue) → \(write.to.rawValue)\(write.eventReason.map { " (\($0))" } ?? "")\(write.message.map { ": \($0)" } ?? "")")
                }
                if write.to.isTerminal { forget(write.jobID) }
            }
            if !applied.isEmpty { progressed = true }
        }
        return progressed
    }

    private var backoff: SchedulerDecisions.Backoff {
        SchedulerDecisions.Backoff(retry: configuration.retryBackoff.secondsValue, maximum: configuration.maxBackoff.secondsValue)
    }

    private func forget(_ id: UUID) {
        owned[id] = nil
        specs[id] = nil
    }

    private func refreshTargets(force: Bool) async throws {
        guard force || targetsLoadedAt == nil else { return }
        let definitions = try await TargetRepository(pool: pool).definitions()
        targets = Dictionary(definitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        targetsLoadedAt = .now
    }

    private func handle(_ live: LiveAttempt, target: TargetDefinition, nodes: Int) -> AttemptHandle {
        AttemptHandle(key: live.key, externalID: live.externalID, target: target, nodes: nodes)
    }

    // MARK: Placement

    /// New attempts for `jobs`, and the placement failures of those that fit nowhere.
    private func plan(_ jobs: [OwnedJob]) async throws -> ([PlacementWrite], [JobWrite]) {
        let registered = targets.values.sorted { $0.name < $1.name }
        var chosen: [(OwnedJob, TargetDefinition, String)] = []
        var failures: [JobWrite] = []
        for job in jobs {
            let (target, why) = SchedulerDecisions.chooseTarget(for: job, registered: registered) { registry.executor(for: $0) != nil }
            if let target {
                chosen.append((job, target, why))
            } else if let write = SchedulerDecisions.jobOnly(.placementFailed(.noMatchingOffer), job: job, message: why) {
                failures.append(write)
            }
        }
        let stores = chosen.map { job, target, _ in (job: job.id, store: (try? StoreURL(parsing: target.storage).description) ?? target.storage) }
        let resume = try await store.newestCommitted(stores)
        let placements = chosen.map { job, target, why in
            let number = job.attempts + 1
            var placement = ["target": target.name, "why": why]
            if let point = resume[job.id] { placement["resume_checkpoint"] = point.checkpointID; placement["resume_step"] = String(point.step) }
            return PlacementWrite(
                jobID: job.id, epoch: job.epoch, from: job.state, attemptID: UUID(), number: number,
                key: "tern-\(job.id.uuidString.lowercased())-\(number)", target: target.name, resume: resume[job.id], placement: placement,
                message: "attempt \(number) placed on \(target.name): \(why)\(resume[job.id].map { "; resumes from step \($0.step) (\($0.checkpointID.prefix(12)))" } ?? "; fresh start")")
        }
        return (placements, failures)
    }

    // MARK: Launch

    private func launch(_ items: [(OwnedJob, LiveAttempt)]) async -> [(OwnedJob, LiveAttempt, Result<String, ExecutorError>)] {
        let requests = items.map { job, live -> (OwnedJob, LiveAttempt, LaunchRequest?, (any Executor)?) in
            guard let target = targets[live.target] else { return (job, live, nil, nil) }
            return (job, live, launchRequest(job, live, target: target), registry.executor(for: target))
        }
        return await withTaskGroup(of: (Int, Result<String, ExecutorError>).self) { group in
            var results: [(OwnedJob, LiveAttempt, Result<String, ExecutorError>)?] = Array(repeating: nil, count: requests.count)
            var next = 0
            func start() {
                guard next < requests.count else { return }
                let index = next
                next += 1
                let (_, live, request, executor) = requests[index]
                group.addTask {
                    guard let request, let executor else {
                        return (index, .failure(ExecutorError(.refused, "target \(live.target) is no longer registered, or this Tern has no executor for it")))
                    }
                    do {
                        return (index, .success(try await executor.launch(request)))
                    } catch let error as ExecutorError {
                        return (index, .failure(error))
                    } catch {
                        return (index, .failure(ExecutorError(.transient, "\(error)")))
                    }
                }
            }
            for _ in 0..<min(configuration.launchParallelism, requests.count) { start() }
            while let (index, result) = await group.next() {
                results[index] = (requests[index].0, requests[index].1, result)
                start()
            }
            return results.compactMap { $0 }
        }
    }

    private func launchRequest(_ job: OwnedJob, _ live: LiveAttempt, target: TargetDefinition) -> LaunchRequest {
        let spec = job.spec
        let base = job.workdirBase ?? configuration.home
        let workdir = spec.workdir.hasPrefix("/") ? spec.workdir : ((base + "/" + spec.workdir) as NSString).standardizingPath
        let plan = AttemptPlan(
            jobID: job.id, jobName: job.name, attemptID: live.id, attemptNumber: live.number, key: live.key, target: target.name,
            storage: target.storage, storageRegion: target.region, credentialsFile: target.credentialsFile, nodes: spec.nodes,
            gpusPerNode: spec.gpusPerNode, workdir: workdir, setup: spec.setup, run: spec.run, environment: spec.env,
            secretNames: spec.secrets, checkpointFormat: spec.checkpoint.format, checkpointDirectory: spec.checkpoint.dir, resume: live.resume,
            heartbeatSeconds: configuration.agentHeartbeat.secondsValue, checkpointPollSeconds: configuration.agentCheckpointPoll.secondsValue,
            graceSeconds: configuration.stopGrace.secondsValue)
        var secrets: [String: String] = ["TERN_DATABASE_URL": configuration.agentDatabaseURL]
        for name in spec.secrets { if let value = configuration.environment[name] { secrets[name] = value } }
        return LaunchRequest(plan: plan, target: target, timeLimit: spec.timeout, privateEnvironment: secrets, agentProgram: configuration.agentProgram)
    }

    // MARK: Poll and stop

    private func poll(_ items: [(OwnedJob, LiveAttempt, StopCause?)]) async -> [JobWrite] {
        var writes: [JobWrite] = []
        let clock = ContinuousClock()
        var byExecutor: [ObjectIdentifier: (any Executor, [(OwnedJob, LiveAttempt, StopCause?, AttemptHandle)])] = [:]
        for (job, live, stop) in items {
            guard let target = targets[live.target], let executor = registry.executor(for: target) else {
                // A target deleted under a live attempt: nothing can be asked; treat it as lost.
                if let write = SchedulerDecisions.report(.nodeLost(message: "target \(live.target) is gone"), externalID: nil, job: job, attempt: live,
                                                         stopCause: stop, backoff: backoff) { writes.append(write) }
                continue
            }
            let key = ObjectIdentifier(executor as AnyObject)
            byExecutor[key, default: (executor, [])].1.append((job, live, stop, handle(live, target: target, nodes: job.spec.nodes)))
        }
        for (_, (executor, group)) in byExecutor {
            // Stops first, at most once per poll interval each, so the status read after sees them.
            for (_, live, stop, handle) in group where stop != nil {
                if lastStopSent[live.id].map({ clock.now - $0 < configuration.pollInterval }) ?? false { continue }
                lastStopSent[live.id] = clock.now
                do { try await executor.stop(handle, grace: configuration.stopGrace) } catch { log("stopping \(live.key): \(error)") }
            }
            let statuses: [String: ExecutorStatus]
            do {
                statuses = try await executor.status(of: group.map(\.3))
            } catch {
                log("status of \(group.count) attempt(s) failed: \(error); asking again next poll")
                continue
            }
            for (job, live, stop, handle) in group {
                lastPolled[live.id] = clock.now
                guard let status = statuses[live.key] else { continue }
                if let write = SchedulerDecisions.report(status, externalID: handle.externalID, job: job, attempt: live, stopCause: stop, backoff: backoff) {
                    writes.append(write)
                    if write.attempt.map({ $0.to.isTerminal }) ?? false {
                        lastPolled[live.id] = nil
                        lastStopSent[live.id] = nil
                    }
                }
            }
        }
        return writes
    }

    // MARK: Replicas

    /// True for `<id>@<this host>:<pid>` when that pid no longer runs: a replica on this machine
    /// that crashed, whose jobs can be taken over at once instead of after its lease runs out.
    static func isDeadLocalOwner(_ owner: String) -> Bool {
        guard let at = owner.lastIndex(of: "@") else { return false }
        let rest = owner[owner.index(after: at)...]
        guard let colon = rest.lastIndex(of: ":"), rest[..<colon] == hostName(), let pid = pid_t(rest[rest.index(after: colon)...]) else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Wakes a sleeping loop: `wake()` from any thread ends the current (or next) `wait`.
final class Waker: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns after `duration`, or sooner when woken (a wake that came while nobody waited counts).
    func wait(for duration: Duration) async {
        let timer = Task { [weak self] in
            // Cancelled (a real wake came first): end without waking, or the next wait would
            // return at once and the loop would spin.
            do { try await Task.sleep(for: duration) } catch { return }
            self?.wake()
        }
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.pending {
                    state.pending = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
        // A real wake that came while the timer also fired leaves `pending` set: the next wait then
        // returns at once, one cheap tick, where clearing it could swallow a real wake.
        timer.cancel()
        await timer.value
    }

    /// Whether the next `wait` will return at once.
    var isPending: Bool { state.withLock { $0.pending } }
}
