import Foundation
import Glibc
import Synchronization
import TernCheckpoints
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
    /// Decoded specs by spec hash (jobs of one sweep share them), bounded.
    private var specs: [String: JobSpec] = [:]
    private var lastRenewal = ContinuousClock.now
    private var lastOrphanScan: ContinuousClock.Instant?
    private var lastPolled: [UUID: ContinuousClock.Instant] = [:]
    private var lastStopSent: [UUID: ContinuousClock.Instant] = [:]
    private var targets: [String: TargetDefinition] = [:]
    private var targetsLoadedAt: ContinuousClock.Instant?
    private var catalog = PriceCatalog()
    private var catalogProblem: String?
    private let waker = Waker()
    /// Checkpoint moves under way, by `<checkpoint>@<store>`, and the jobs waiting on each.
    private var moves: [String: Task<Void, Never>] = [:]
    private var moveWaiters: [String: Set<UUID>] = [:]
    /// Moves that ended since the last tick, to record as events.
    private let finishedMoves = Inbox<MoveOutcome>()
    private var lastPreReplication: ContinuousClock.Instant?

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
            // Checkpoint moves under way finish first: a copy is never left half made.
            if owned.isEmpty && !progressed && moves.isEmpty { return }
            if !progressed { await waker.wait(for: moves.isEmpty ? idleWait : configuration.pollInterval) }
        }
    }

    /// Wakes the loop now (tests use it instead of waiting for a poll).
    public nonisolated func wake() { waker.wake() }

    /// Whether the loop is parked between ticks, so that only a wake or its timer moves it (tests
    /// use it to show what woke it).
    nonisolated var isWaitingForWork: Bool { waker.isWaiting }

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
        // Moves that ended free their slot now, whether or not their jobs are still held.
        let movesDone = finishedMoves.takeAll()
        for outcome in movesDone { moves[outcome.key] = nil }
        if !movesDone.isEmpty { progressed = true }
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

        var known = specs.count > 10_000 ? [:] : specs
        let jobs = try await store.load(owned.map { ($0.key, $0.value) }, heartbeatTimeout: configuration.heartbeatTimeout.secondsValue, specs: &known)
        specs = known
        let present = Set(jobs.map(\.id))
        for id in owned.keys where !present.contains(id) { forget(id) }

        // Moves that ended are recorded first, so the events read in order: the checkpoint is
        // committed there, then the attempt that resumes from it is placed.
        let moveWrites = moveEvents(movesDone, jobs: jobs)
        if !moveWrites.isEmpty { _ = try await store.apply(moveWrites) }
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
        // A job whose resume checkpoint is on its way to the chosen target waits for the move.
        let waiting = moveWaiters.values.reduce(into: Set<UUID>()) { $0.formUnion($1) }
        toPlace.removeAll { waiting.contains($0.id) }
        if lastPreReplication.map({ clock.now - $0 >= configuration.preReplicationInterval }) ?? true {
            lastPreReplication = clock.now
            try await preReplicate(jobs)
        }

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
                    case .capacity:
                        status = .launchFailed(.capacity, message: error.message)
                        // Every job learns from this refusal: the offer is left out until the block lapses.
                        let (region, offer) = try await store.offer(ofAttempt: live.id)
                        try await store.block(target: live.target, region: region ?? targets[live.target]?.region, offer: offer ?? targets[live.target]?.kind.rawValue ?? "local",
                                              seconds: configuration.capacityBlock.secondsValue, error: error.message)
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
    }

    private func refreshTargets(force: Bool) async throws {
        guard force || targetsLoadedAt == nil else { return }
        let definitions = try await TargetRepository(pool: pool).definitions()
        targets = Dictionary(definitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        targetsLoadedAt = .now
        if let path = configuration.catalogPath {
            do {
                catalog = try PriceCatalog.load(fileAt: path)
                catalogProblem = nil
            } catch {
                if catalogProblem == nil { log("the price catalogue is unusable: \(error)") }
                catalogProblem = error.description
            }
        }
    }

    private func handle(_ live: LiveAttempt, target: TargetDefinition, nodes: Int) -> AttemptHandle {
        AttemptHandle(key: live.key, externalID: live.externalID, target: target, nodes: nodes)
    }

    // MARK: Placement

    /// New attempts for `jobs`, the writes of those that fit nowhere, and moves started for those
    /// whose resume checkpoint is not on the chosen target yet (placed once the move is done).
    private func plan(_ jobs: [OwnedJob]) async throws -> ([PlacementWrite], [JobWrite]) {
        let registered = targets.values.sorted { $0.name < $1.name }
        let stores = Dictionary(uniqueKeysWithValues: registered.map { ($0.name, Self.canonicalStore($0.storage)) })
        let facts = try await store.resumeFacts(jobs: jobs.map(\.id), stores: Array(Set(stores.values)))
        let blocks = try await store.capacityBlocks()
        let planner = PlacementPlanner(catalog: catalog)
        let now = try await store.databaseNow()
        var placements: [PlacementWrite] = []
        var failures: [JobWrite] = []
        // Jobs of one sweep get equal decisions; each is encoded once (JSONEncoder is the dearest
        // part of placing a batch).
        var encoded: [PlacementDecision: String] = [:]
        func json(_ decision: PlacementDecision) -> String {
            if let known = encoded[decision] { return known }
            let text = Self.json(decision)
            encoded[decision] = text
            return text
        }
        for job in jobs {
            let registry = self.registry
            let input = PlacementPlanner.Input(
                spec: job.spec, registered: registered, hasExecutor: { registry.executor(for: $0) != nil }, blocks: blocks, now: now,
                resume: facts[job.id], runningSeconds: job.runningSeconds, migrateTo: job.migrateTo, lastTarget: job.lastTarget,
                lastAttemptState: job.lastAttemptState, stores: stores)
            let decision = planner.decide(input)
            guard let chosen = decision.chosen, let target = targets[chosen.target] else {
                // Only capacity blocks stand in the way: wait for them to lapse instead of failing.
                let blockedOnly = !decision.candidates.isEmpty
                    && decision.candidates.allSatisfy { $0.excluded?.hasPrefix("capacity for") ?? false }
                let problem: PlacementProblem = blockedOnly ? .capacityUnavailable : .noMatchingOffer
                let why = decision.why + (catalogProblem.map { " (the price catalogue could not be read: \($0))" } ?? "")
                if var write = SchedulerDecisions.jobOnly(.placementFailed(problem), job: job, message: why, details: ["placement": json(decision)]) {
                    if blockedOnly {
                        let soonest = blocks.map(\.until).min().map { $0.timeIntervalSince(now) } ?? configuration.retryBackoff.secondsValue
                        write.backoff = max(1, min(soonest, configuration.maxBackoff.secondsValue))
                    }
                    failures.append(write)
                }
                continue
            }
            let destination = stores[target.name] ?? target.storage
            var resume: ResumePoint?
            if let fact = facts[job.id] {
                if fact.committedOn.contains(destination) {
                    resume = ResumePoint(checkpointID: fact.checkpointID, step: fact.step)
                } else if let source = fact.committedOn.sorted().first {
                    // Make it consistent there first (only missing files move); place afterwards.
                    startMove(fact.checkpointID, step: fact.step, from: source, to: target, for: job.id, reason: "placement")
                    continue
                }
            }
            let number = job.attempts + 1
            let price = chosen.hourlyPrice.map { String(format: "$%.2f/h", $0) } ?? "unpriced"
            placements.append(PlacementWrite(
                jobID: job.id, epoch: job.epoch, from: job.state, attemptID: UUID(), number: number,
                key: "tern-\(job.id.uuidString.lowercased())-\(number)", target: target.name, region: target.region, offer: chosen.offer,
                hourlyPrice: chosen.hourlyPrice, resume: resume, placementJSON: json(decision),
                message: "attempt \(number) placed on \(target.name) (\(chosen.offer ?? "-"), \(price)): \(decision.why)"
                    + (resume.map { "; resumes from step \($0.step) (\($0.checkpointID.prefix(12)))" } ?? "; fresh start")))
        }
        return (placements, failures)
    }

    static func json<Value: Encodable>(_ value: Value) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The form replicas record a store under (`StoreURL.description`).
    static func canonicalStore(_ text: String) -> String {
        (try? StoreURL(parsing: text).description) ?? text
    }

    // MARK: Moving checkpoints

    /// What a move did, recorded as an event of each job that waited on it.
    struct MoveOutcome: Sendable {
        /// `<checkpoint>@<store>`, the move's key.
        var key: String
        var jobs: Set<UUID>
        var checkpointID: String
        var step: Int64
        var target: String
        var reason: String
        var report: ReplicationReport?
        var error: String?
        var seconds: Double
    }

    /// Starts copying a committed checkpoint to a target's store in the background (at most
    /// `moveParallelism` at once; others wait for a later tick). The job is placed once it is there.
    /// - Parameter keep: after a successful copy, collect the job's checkpoints beyond this many
    ///   (pre-replication honours the spec's `checkpoint.keep`).
    private func startMove(_ checkpointID: String, step: Int64, from source: String, to target: TargetDefinition, for job: UUID, reason: String,
                           keep: Int? = nil) {
        let key = "\(checkpointID)@\(Self.canonicalStore(target.storage))"
        moveWaiters[key, default: []].insert(job)
        guard moves[key] == nil, moves.count < configuration.moveParallelism else { return }
        let pool = self.pool, owner = leaseOwner, finished = finishedMoves, waker = self.waker, log = self.log
        let sourceTarget = targets.values.first { Self.canonicalStore($0.storage) == source }
        let definitions = Array(targets.values)
        let scratch = configuration.scratch ?? configuration.home + "/scratch"
        log("moving checkpoint \(checkpointID.prefix(12)) (step \(step)) from \(source) to \(target.name) (\(reason))")
        moves[key] = Task {
            let started = ContinuousClock.now
            var outcome = MoveOutcome(key: key, jobs: [], checkpointID: checkpointID, step: step, target: target.name, reason: reason, seconds: 0)
            do {
                let stored = try await CheckpointRepository(pool: pool).checkpoint(reference: checkpointID)
                let sealed = SealedCheckpoint(manifest: stored.manifest, manifestJSON: stored.manifestJSON, sidecar: stored.sidecar,
                                              format: JobSpec.CheckpointFormat(rawValue: stored.format) ?? .marker)
                let from = try sourceTarget.map { try TargetStore.open($0).store } ?? BlobStores.open(source)
                let (to, url) = try TargetStore.open(target)
                let journal = ReplicaRepository(pool: pool).journal(checkpointID: checkpointID, store: url, target: target.name, replicator: owner)
                try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
                outcome.report = try await CheckpointTransfer(source: from, destination: to, scratch: scratch).copy(sealed, journal: journal)
                if let keep {
                    let known = definitions
                    let collector = CheckpointCollector(pool: pool) { url, name in
                        if let name, let definition = known.first(where: { $0.name == name }) { return try TargetStore.open(definition).store }
                        return try BlobStores.open(url)
                    }
                    do {
                        let collected = try await collector.collect(job: job, keep: keep, dryRun: false)
                        if !collected.collected.isEmpty { log("collected \(collected.collected.count) checkpoint(s) of job \(job.uuidString.lowercased().prefix(8)) beyond keep \(keep)") }
                    } catch {
                        log("collecting checkpoints beyond keep \(keep): \(error)")
                    }
                }
            } catch {
                outcome.error = "\(error)"
                // A source that is not what it claims (a chunk that does not match) is demoted, so
                // placement falls back to the previous consistent checkpoint.
                if let bad = error as? CheckpointError, bad.storeCopyIsBad, let url = try? StoreURL(parsing: source) {
                    let journal = ReplicaRepository(pool: pool).journal(checkpointID: checkpointID, store: url, target: sourceTarget?.name, replicator: owner)
                    let opened = try? sourceTarget.map { try TargetStore.open($0).store } ?? BlobStores.open(source)
                    if let opened { try? await Replicator(store: opened).demote(checkpointID, journal: journal, reason: "\(error)") }
                }
            }
            outcome.seconds = (ContinuousClock.now - started).secondsValue
            finished.append(outcome)
            waker.wake()
        }
    }

    /// Records the moves that finished since the last tick as events of the jobs that waited on them.
    private func moveEvents(_ done: [MoveOutcome], jobs: [OwnedJob]) -> [JobWrite] {
        var writes: [JobWrite] = []
        for var outcome in done {
            outcome.jobs = moveWaiters.removeValue(forKey: outcome.key) ?? []
            for job in jobs where outcome.jobs.contains(job.id) {
                var write = JobWrite(jobID: job.id, epoch: job.epoch, from: job.state, to: job.state)
                if let report = outcome.report {
                    write.eventKind = "checkpoint_replicated"
                    write.message = String(format: "step %lld (%@) is now committed on %@ (%@): %lld bytes moved, %lld already there, %.1fs",
                                           outcome.step, String(outcome.checkpointID.prefix(12)), outcome.target, outcome.reason,
                                           report.bytesSent, report.bytesSkipped, outcome.seconds)
                    write.details = ["checkpoint": outcome.checkpointID, "target": outcome.target, "bytes_moved": String(report.bytesSent),
                                     "bytes_already_there": String(report.bytesSkipped), "reason": outcome.reason]
                } else {
                    write.eventKind = "checkpoint_replication_failed"
                    write.message = "step \(outcome.step) (\(outcome.checkpointID.prefix(12))) could not be made consistent on \(outcome.target): \(outcome.error ?? "unknown error")"
                    write.details = ["checkpoint": outcome.checkpointID, "target": outcome.target, "reason": outcome.reason]
                }
                writes.append(write)
            }
        }
        return writes
    }

    /// Keeps each running job's newest committed checkpoint replicated to the targets in its
    /// `checkpoint.replicate_to`, so a failover usually moves nothing; then collects checkpoints
    /// beyond the spec's `keep`.
    private func preReplicate(_ jobs: [OwnedJob]) async throws {
        let candidates = jobs.filter { !$0.spec.checkpoint.replicateTo.isEmpty && [.starting, .running].contains($0.state) }
        if candidates.isEmpty { return }
        let facts = try await store.resumeFacts(jobs: candidates.map(\.id), stores: [])
        for job in candidates {
            guard let fact = facts[job.id], let source = fact.committedOn.sorted().first else { continue }
            for name in job.spec.checkpoint.replicateTo {
                guard let target = targets[name] else { continue }
                if fact.committedOn.contains(Self.canonicalStore(target.storage)) { continue }
                startMove(fact.checkpointID, step: fact.step, from: source, to: target, for: job.id, reason: "pre-replication",
                          keep: job.spec.checkpoint.keep)
            }
        }
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
        var plan = AttemptPlan(
            jobID: job.id, jobName: job.name, attemptID: live.id, attemptNumber: live.number, key: live.key, target: target.name,
            storage: target.storage, storageRegion: target.region, credentialsFile: target.credentialsFile, nodes: spec.nodes,
            gpusPerNode: spec.gpusPerNode, workdir: workdir, setup: spec.setup, run: spec.run, environment: spec.env,
            secretNames: spec.secrets, checkpointFormat: spec.checkpoint.format, checkpointDirectory: spec.checkpoint.dir, resume: live.resume,
            heartbeatSeconds: configuration.agentHeartbeat.secondsValue, checkpointPollSeconds: configuration.agentCheckpointPoll.secondsValue,
            graceSeconds: configuration.stopGrace.secondsValue)
        plan.storageEndpoint = target.storageEndpoint
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
            for (job, live, stop, handle) in group where stop != nil {
                if lastStopSent[live.id].map({ clock.now - $0 < configuration.pollInterval }) ?? false { continue }
                lastStopSent[live.id] = clock.now
                let grace = job.stopGrace.map { Duration.milliseconds(Int64($0 * 1000)) } ?? configuration.stopGrace
                do { try await executor.stop(handle, grace: grace) } catch { log("stopping \(live.key): \(error)") }
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

/// Values handed from background tasks to the loop.
final class Inbox<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    func append(_ value: Value) { values.withLock { $0.append(value) } }

    func takeAll() -> [Value] {
        values.withLock { values in
            defer { values = [] }
            return values
        }
    }
}

/// Wakes a sleeping loop: `wake()` from any thread ends the current (or next) `wait`.
final class Waker: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    var isWaiting: Bool { state.withLock { $0.waiter != nil } }

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

    /// Returns after `duration`, or sooner when woken (a wake that came while nobody waited counts)
    /// or when the calling task is cancelled.
    func wait(for duration: Duration) async {
        let timer = Task { [weak self] in
            // Cancelled (a real wake came first): end without waking, or the next wait would
            // return at once and the loop would spin.
            do { try await Task.sleep(for: duration) } catch { return }
            self?.wake()
        }
        // Cancelling the waiting task (SIGTERM to `tern scheduler`) ends the wait at once instead
        // of after the timer: a wake that comes before the continuation is parked counts too.
        await withTaskCancellationHandler {
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
        } onCancel: { [weak self] in
            self?.wake()
        }
        // A real wake that came while the timer also fired leaves `pending` set: the next wait then
        // returns at once, one cheap tick, where clearing it could swallow a real wake.
        timer.cancel()
        await timer.value
    }

    /// Whether the next `wait` will return at once.
    var isPending: Bool { state.withLock { $0.pending } }
}
