// The job state machine: which events may move a job from which state, and where to.
//
// It is pure: no clock, no database, no counters. Everything a decision needs arrives in the event
// (the restart budget, the placement verdict), so the same table drives the scheduler, the tests
// and `docs/lifecycle.md`. The caller (TernControl) applies an accepted transition in one short
// transaction with the lease fence, and appends the event to `job_events`; a rejection means the
// event does not apply to the job as it now stands (a late or duplicated report, or a request that
// makes no sense), and nothing is written.

// MARK: - Event payloads

/// A non-retryable way an attempt ended badly: the job fails with the matching reason.
public enum AttemptFailure: String, Sendable, Hashable, CaseIterable, Codable {
    /// The target refused or failed the launch for a reason other than capacity (bad credentials,
    /// an image the target cannot run). Transient call errors are retried with the same
    /// idempotency key before this is reported.
    case launchFailed = "launch_failed"
    /// The spec's `setup` command exited non-zero: running it again would fail the same way.
    case setupFailed = "setup_failed"
    /// The `run` command exited non-zero with a code not in `recovery.recover_on_exit_codes`.
    case exitCode = "exit_code"

    /// The reason the job fails with.
    public var reason: FailureReason {
        switch self {
        case .launchFailed: .launchFailed
        case .setupFailed: .setupFailed
        case .exitCode: .exitCode
        }
    }
}

/// A way an attempt ended that another attempt may get past: the job recovers while its restart
/// budget lasts.
public enum Interruption: String, Sendable, Hashable, CaseIterable, Codable {
    /// The cloud took the (spot) capacity back.
    case preempted
    /// A node went away, the heartbeat expired or the agent lost its lease.
    case lost
    /// The `run` command exited with a code listed in `recovery.recover_on_exit_codes`.
    case retryableExitCode = "retryable_exit_code"
    /// The target refused the launch for lack of capacity; the offer is blocked for a while in
    /// `capacity_blocks` and placement tries elsewhere.
    case noCapacity = "no_capacity"

    /// The reason the job fails with when this happens and the restart budget is spent.
    public var exhaustedReason: FailureReason {
        switch self {
        case .preempted: .preemptedTooOften
        case .lost: .lostTooOften
        case .retryableExitCode: .exitCode
        case .noCapacity: .noResources
        }
    }
}

/// Why placement could not put a new attempt anywhere.
public enum PlacementProblem: String, Sendable, Hashable, CaseIterable, Codable {
    /// Offers that fit exist but are all blocked or out of capacity right now. Blocks expire, so
    /// the job waits in its state (the transition records `no_resources` so users see why).
    case capacityUnavailable = "capacity_unavailable"
    /// No offer on any allowed target can ever fit the spec (accelerators, nodes, spot, cost).
    /// Waiting would never end, so the job fails with `no_resources` — except while migrating,
    /// where only the chosen target cannot fit and the job falls back to its spec's placement.
    case noMatchingOffer = "no_matching_offer"
    /// The spec cannot be placed as written (a target it names is gone, a secret is missing).
    case invalidSpec = "invalid_spec"
}

/// Who asked for a migration. Recorded with the event; both are handled the same.
public enum MigrationRequester: String, Sendable, Hashable, CaseIterable, Codable {
    /// `tern migrate JOB --to TARGET`.
    case user
    /// The scheduler chose to move the job (a cheaper target, a stuck queue, capacity loss).
    case scheduler
}

// MARK: - Events

/// Something that happened to a job, or was asked of it. The scheduler turns executor reports,
/// placement results, user commands and timers into these.
public enum JobEvent: Sendable, Hashable {
    /// Placement chose an offer and the new attempt's row was written and its launch requested.
    case attemptLaunched
    /// The current attempt started running (its executor or agent says so).
    case attemptRunning
    /// The current attempt's `run` command exited 0.
    case attemptSucceeded
    /// The current attempt ended in a way a new attempt may get past. `restartBudgetLeft` is the
    /// caller's reading of the spec's `recovery` budget and the job's restart counters, so this
    /// machine stays free of counting.
    case attemptInterrupted(Interruption, restartBudgetLeft: Bool)
    /// The current attempt ended in a way another attempt would repeat.
    case attemptFailed(AttemptFailure)
    /// Placement could not put a new attempt anywhere.
    case placementFailed(PlacementProblem)
    /// A move to another target was asked for.
    case migrateRequested(by: MigrationRequester)
    /// `tern cancel`.
    case cancelRequested
    /// The attempt Tern asked to stop (for a cancel or a migration) is confirmed gone, or there
    /// was none left to stop.
    case attemptStopped
    /// The spec's `timeout` passed.
    case timedOut

    /// The event's kind in snake_case, stored as `job_events.kind`. Payloads are stored beside it.
    public var name: String {
        switch self {
        case .attemptLaunched: "attempt_launched"
        case .attemptRunning: "attempt_running"
        case .attemptSucceeded: "attempt_succeeded"
        case .attemptInterrupted: "attempt_interrupted"
        case .attemptFailed: "attempt_failed"
        case .placementFailed: "placement_failed"
        case .migrateRequested: "migrate_requested"
        case .cancelRequested: "cancel_requested"
        case .attemptStopped: "attempt_stopped"
        case .timedOut: "timed_out"
        }
    }

    /// What applying the event would do, as the verb phrase of a rejection ("cannot cancel job").
    var action: String {
        switch self {
        case .attemptLaunched: "launch an attempt for job"
        case .attemptRunning: "mark job running"
        case .attemptSucceeded: "mark job succeeded"
        case .attemptInterrupted: "recover job"
        case .attemptFailed: "fail job"
        case .placementFailed: "record a failed placement for job"
        case .migrateRequested: "migrate job"
        case .cancelRequested: "cancel job"
        case .attemptStopped: "record a stopped attempt for job"
        case .timedOut: "time out job"
        }
    }
}

// MARK: - Results

/// An accepted job transition: what to write to `jobs` and append to `job_events`.
public struct JobTransition: Sendable, Hashable {
    public let from: JobState
    public let to: JobState
    public let event: JobEvent
    /// Why the job failed, was cancelled, or could not be placed (`no_resources` on a job left
    /// waiting); `nil` for ordinary progress.
    public let reason: FailureReason?

    public init(from: JobState, to: JobState, event: JobEvent, reason: FailureReason? = nil) {
        self.from = from
        self.to = to
        self.event = event
        self.reason = reason
    }

    /// `false` for an event that is recorded but leaves the state as it was (a job waiting for
    /// capacity, a migration making progress, a launch that raced a cancel).
    public var changesState: Bool { from != to }
}

/// An event that does not apply in the state it met, with the reason in words.
///
/// Shared by both machines; ``subject`` says which, with the state and event it refused.
public struct TransitionRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// The machine, the state and the event that were refused.
    public enum Subject: Sendable, Hashable {
        case job(JobState, JobEvent)
        case attempt(AttemptState, AttemptEvent)
    }

    public let subject: Subject
    /// Why, as a clause about the job or attempt ("it already succeeded").
    public let why: String

    public init(_ subject: Subject, why: String) {
        self.subject = subject
        self.why = why
    }

    /// The refused state's raw value.
    public var state: String {
        switch subject {
        case .job(let state, _): state.rawValue
        case .attempt(let state, _): state.rawValue
        }
    }

    /// The refused event's `name`.
    public var event: String {
        switch subject {
        case .job(_, let event): event.name
        case .attempt(_, let event): event.name
        }
    }

    /// "cannot cancel job: it already succeeded".
    public var description: String {
        switch subject {
        case .job(_, let event): "cannot \(event.action): \(why)"
        case .attempt(_, let event): "cannot \(event.action): \(why)"
        }
    }
}

// MARK: - The machine

/// The job lifecycle (DESIGN §4): `pending → starting → running → succeeded | failed | cancelled`,
/// with `recovering`, `migrating` and `cancelling` between. See `docs/lifecycle.md` for the table.
///
/// Every `switch` here is exhaustive with no `default:`, so a new state or event does not compile
/// until each pair has been decided.
public enum JobStateMachine {
    /// Where `event` takes a job in `state`, or why it cannot.
    public static func transition(from state: JobState, on event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        switch state {
        // A terminal job never moves again; every late report is refused with the same words.
        case .succeeded: reject(state, event, Why.succeeded)
        case .failed: reject(state, event, Why.failed)
        case .cancelled: reject(state, event, Why.cancelled)
        case .pending: fromPending(event)
        case .starting: fromStarting(event)
        case .running: fromRunning(event)
        case .recovering: fromRecovering(event)
        case .migrating: fromMigrating(event)
        case .cancelling: fromCancelling(event)
        }
    }

    /// The rejection clauses, kept in one place so the tests and the docs quote the same words.
    enum Why {
        static let succeeded = "it already succeeded"
        static let failed = "it already failed"
        static let cancelled = "it was already cancelled"
        static let noAttempt = "it has no live attempt"
        static let hasAttempt = "it already has a live attempt"
        static let alreadyRunning = "its attempt is already running"
        static let alreadyPlaced = "its attempt is already placed"
        static let notPlaced = "it has not been placed yet, so there is nothing to move"
        static let alreadyMigrating = "it is already migrating"
        static let alreadyCancelling = "it is already cancelling"
        static let noStopAsked = "no stop was asked for (only cancel and migrate stop an attempt)"
    }

    // No attempt exists yet: only placement, cancel and the timeout apply.
    private static func fromPending(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.pending
        switch event {
        case .attemptLaunched: return move(state, .starting, event)
        case .attemptRunning, .attemptSucceeded, .attemptInterrupted, .attemptFailed, .attemptStopped:
            return reject(state, event, Why.noAttempt)
        case .placementFailed(let problem): return placementFailed(state, problem, event, noOfferLeadsTo: .failed)
        case .migrateRequested: return reject(state, event, Why.notPlaced)
        // Nothing runs, so there is nothing to wait for: cancel finishes at once.
        case .cancelRequested: return move(state, .cancelled, event, .cancelledByUser)
        case .timedOut: return move(state, .failed, event, .timeout)
        }
    }

    // An attempt is launching or queued. It may finish before we ever see it running (a short
    // job between two polls), so success and failure are accepted here too.
    private static func fromStarting(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.starting
        switch event {
        case .attemptLaunched: return reject(state, event, Why.hasAttempt)
        case .attemptRunning: return move(state, .running, event)
        case .attemptSucceeded: return move(state, .succeeded, event)
        case .attemptInterrupted(let cause, let budgetLeft): return interrupted(state, cause, budgetLeft, event)
        case .attemptFailed(let failure): return move(state, .failed, event, failure.reason)
        case .placementFailed: return reject(state, event, Why.alreadyPlaced)
        case .migrateRequested: return move(state, .migrating, event)
        case .cancelRequested: return move(state, .cancelling, event)
        case .attemptStopped: return reject(state, event, Why.noStopAsked)
        case .timedOut: return move(state, .failed, event, .timeout)
        }
    }

    private static func fromRunning(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.running
        switch event {
        case .attemptLaunched: return reject(state, event, Why.hasAttempt)
        case .attemptRunning: return reject(state, event, Why.alreadyRunning)
        case .attemptSucceeded: return move(state, .succeeded, event)
        case .attemptInterrupted(let cause, let budgetLeft): return interrupted(state, cause, budgetLeft, event)
        case .attemptFailed(let failure): return move(state, .failed, event, failure.reason)
        case .placementFailed: return reject(state, event, Why.alreadyPlaced)
        case .migrateRequested: return move(state, .migrating, event)
        case .cancelRequested: return move(state, .cancelling, event)
        case .attemptStopped: return reject(state, event, Why.noStopAsked)
        // The job fails now; the scheduler then stops the attempt a terminal job still has
        // (the attempt ends `cancelled` with reason `timeout`).
        case .timedOut: return move(state, .failed, event, .timeout)
        }
    }

    // The last attempt ended and a new placement is being made; no attempt is live.
    private static func fromRecovering(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.recovering
        switch event {
        case .attemptLaunched: return move(state, .starting, event)
        case .attemptRunning, .attemptSucceeded, .attemptInterrupted, .attemptFailed, .attemptStopped:
            return reject(state, event, Why.noAttempt)
        case .placementFailed(let problem): return placementFailed(state, problem, event, noOfferLeadsTo: .failed)
        // Moving a recovering job only chooses where its next attempt goes.
        case .migrateRequested: return move(state, .migrating, event)
        // Not straight to cancelled: an attempt row may have been written and its launch be in
        // flight (rows are written before the cloud is called). The scheduler confirms that nothing
        // is left with `attemptStopped`.
        case .cancelRequested: return move(state, .cancelling, event)
        case .timedOut: return move(state, .failed, event, .timeout)
        }
    }

    // A move is under way: the old attempt (if any) is asked for a checkpoint and stopped, then a
    // new one is placed on the chosen target. Reports about the old attempt are recorded without
    // leaving the state, unless they end the job. The scheduler launches the new attempt only
    // after the old one is confirmed gone; this machine trusts it on that.
    private static func fromMigrating(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.migrating
        switch event {
        case .attemptLaunched: return move(state, .starting, event)
        // The old attempt got going before the stop reached it; the move goes on.
        case .attemptRunning: return move(state, .migrating, event)
        // It finished before it could be moved: the work is done.
        case .attemptSucceeded: return move(state, .succeeded, event)
        // It died on its own before the stop; the move goes on from the newest checkpoint, but the
        // interruption still counts against the budget.
        case .attemptInterrupted(let cause, let budgetLeft):
            return budgetLeft ? move(state, .migrating, event) : move(state, .failed, event, cause.exhaustedReason)
        case .attemptFailed(let failure): return move(state, .failed, event, failure.reason)
        // Only the chosen target cannot fit: fall back to the spec's own placement (`recovering`)
        // rather than fail a job that could still run elsewhere.
        case .placementFailed(let problem): return placementFailed(state, problem, event, noOfferLeadsTo: .recovering)
        case .migrateRequested: return reject(state, event, Why.alreadyMigrating)
        case .cancelRequested: return move(state, .cancelling, event)
        // The old attempt is gone; placement on the new target comes next.
        case .attemptStopped: return move(state, .migrating, event)
        case .timedOut: return move(state, .failed, event, .timeout)
        }
    }

    // A cancel was asked while an attempt may be alive. Whatever the attempt does now, the job ends
    // cancelled: the user's request wins, and the attempt row keeps its own true outcome.
    private static func fromCancelling(_ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        let state = JobState.cancelling
        switch event {
        // A launch that raced the cancel completed; recorded so the scheduler stops that attempt.
        case .attemptLaunched: return move(state, .cancelling, event)
        case .attemptRunning: return move(state, .cancelling, event)
        case .attemptSucceeded, .attemptInterrupted, .attemptFailed, .attemptStopped:
            return move(state, .cancelled, event, .cancelledByUser)
        // Nothing more is placed, moved, or timed out for a job on its way to cancelled.
        case .placementFailed, .migrateRequested, .cancelRequested, .timedOut:
            return reject(state, event, Why.alreadyCancelling)
        }
    }

    // MARK: Shared decisions

    /// A retryable end: recover while the budget lasts, else fail with the cause's own reason.
    private static func interrupted(_ state: JobState, _ cause: Interruption, _ budgetLeft: Bool, _ event: JobEvent) -> Result<JobTransition, TransitionRejection> {
        budgetLeft ? move(state, .recovering, event) : move(state, .failed, event, cause.exhaustedReason)
    }

    /// Placement found nowhere. A temporary shortage leaves the job waiting where it is (capacity
    /// blocks expire); a permanent one goes to `noOfferLeadsTo`; an unplaceable spec fails.
    private static func placementFailed(_ state: JobState, _ problem: PlacementProblem, _ event: JobEvent, noOfferLeadsTo permanent: JobState) -> Result<JobTransition, TransitionRejection> {
        switch problem {
        case .capacityUnavailable: move(state, state, event, .noResources)
        case .noMatchingOffer: move(state, permanent, event, .noResources)
        case .invalidSpec: move(state, .failed, event, .invalidSpec)
        }
    }

    private static func move(_ from: JobState, _ to: JobState, _ event: JobEvent, _ reason: FailureReason? = nil) -> Result<JobTransition, TransitionRejection> {
        .success(JobTransition(from: from, to: to, event: event, reason: reason))
    }

    private static func reject(_ state: JobState, _ event: JobEvent, _ why: String) -> Result<JobTransition, TransitionRejection> {
        .failure(TransitionRejection(.job(state, event), why: why))
    }
}
