// The attempt state machine: one placement of a job on one target, from its launch to its end.
//
// Pure like ``JobStateMachine``. An attempt's truth is the executor's (and its agent's) report, and
// the first report Tern sees can be any of them: a short job can finish between two polls, and a
// scheduler that took over a lease adopts an attempt by its idempotency key in whatever state the
// cloud has it. So from every live state any ending is accepted, and skipping `queued` is fine; what
// is refused is going backwards, launch failures after the attempt ran, and anything after an end.

// MARK: - Event payloads

/// Why a launch did not produce a running attempt.
public enum LaunchFailure: String, Sendable, Hashable, CaseIterable, Codable {
    /// The target had no capacity for the offer (e.g. InsufficientInstanceCapacity). The job side
    /// sees this as a retryable ``Interruption/noCapacity``.
    case capacity
    /// Any other refusal or error of the target.
    case error

    /// The attempt's end reason.
    public var reason: FailureReason {
        switch self {
        case .capacity: .noResources
        case .error: .launchFailed
        }
    }
}

/// How an attempt was found lost.
public enum LossCause: String, Sendable, Hashable, CaseIterable, Codable {
    /// The control plane stopped hearing the heartbeat.
    case heartbeatExpired = "heartbeat_expired"
    /// The executor reports a node (or the whole resource) gone.
    case nodeLost = "node_lost"
    /// The agent could not renew its lease and stopped itself.
    case leaseLost = "lease_lost"
    /// The agent could not restore the checkpoint it was to resume from (not committed on the
    /// target's store, or a chunk did not match its manifest). The replica is demoted, so the next
    /// attempt resumes from another checkpoint; the job itself never started.
    case restoreFailed = "restore_failed"

    /// The attempt's end reason.
    public var reason: FailureReason {
        switch self {
        case .heartbeatExpired: .heartbeatExpired
        case .nodeLost: .nodeLost
        case .leaseLost: .leaseLost
        case .restoreFailed: .restoreFailed
        }
    }
}

/// Why Tern stopped an attempt on purpose.
public enum StopCause: String, Sendable, Hashable, CaseIterable, Codable {
    /// The job was cancelled.
    case cancelledByUser = "cancelled_by_user"
    /// The job is moving to another target.
    case migrated
    /// The job ran past its timeout.
    case timeout

    /// The attempt's end reason.
    public var reason: FailureReason {
        switch self {
        case .cancelledByUser: .cancelledByUser
        case .migrated: .migrated
        case .timeout: .timeout
        }
    }
}

// MARK: - Events

/// What the executor or the attempt's agent reported about one attempt.
public enum AttemptEvent: Sendable, Hashable {
    /// The executor accepted the launch and returned its external reference; the attempt waits in
    /// the target's queue.
    case accepted
    /// The attempt's nodes are up and the agent is running the job.
    case started
    /// The `run` command exited: 0 succeeds, anything else fails with `exit_code`. Whether a
    /// non-zero code is retryable is the job's question (its spec's `recover_on_exit_codes`), not
    /// the attempt's.
    case exited(code: Int32)
    /// The `setup` command exited non-zero.
    case setupFailed
    /// The launch failed after all (before or while queued).
    case launchFailed(LaunchFailure)
    /// The cloud took the capacity back.
    case preempted
    /// The attempt was found lost.
    case lost(LossCause)
    /// The stop Tern asked for is confirmed: the attempt's resources are gone.
    case cancelConfirmed(StopCause)

    /// The event's kind in snake_case, as stored beside the attempt's events.
    public var name: String {
        switch self {
        case .accepted: "accepted"
        case .started: "started"
        case .exited: "exited"
        case .setupFailed: "setup_failed"
        case .launchFailed: "launch_failed"
        case .preempted: "preempted"
        case .lost: "lost"
        case .cancelConfirmed: "cancel_confirmed"
        }
    }

    /// What applying the event would do, as the verb phrase of a rejection.
    var action: String {
        switch self {
        case .accepted: "mark attempt queued"
        case .started: "mark attempt running"
        case .exited: "record an exit of attempt"
        case .setupFailed: "record a setup failure of attempt"
        case .launchFailed: "record a launch failure of attempt"
        case .preempted: "mark attempt preempted"
        case .lost: "mark attempt lost"
        case .cancelConfirmed: "mark attempt cancelled"
        }
    }
}

// MARK: - Results

/// An accepted attempt transition: what to write to `attempts`.
public struct AttemptTransition: Sendable, Hashable {
    public let from: AttemptState
    public let to: AttemptState
    public let event: AttemptEvent
    /// Why the attempt ended (`attempts.end_reason`); `nil` while it lives and when it succeeded.
    public let reason: FailureReason?

    public init(from: AttemptState, to: AttemptState, event: AttemptEvent, reason: FailureReason? = nil) {
        self.from = from
        self.to = to
        self.event = event
        self.reason = reason
    }
}

// MARK: - The machine

/// The attempt lifecycle (DESIGN §4): `launching → queued → running → succeeded | failed |
/// preempted | lost | cancelled`. Exhaustive switches, no `default:`.
public enum AttemptStateMachine {
    /// Where `event` takes an attempt in `state`, or why it cannot.
    public static func transition(from state: AttemptState, on event: AttemptEvent) -> Result<AttemptTransition, TransitionRejection> {
        switch state {
        // An ended attempt is history: late or repeated reports are refused.
        case .succeeded: reject(state, event, Why.succeeded)
        case .failed: reject(state, event, Why.failed)
        case .preempted: reject(state, event, Why.preempted)
        case .lost: reject(state, event, Why.lost)
        case .cancelled: reject(state, event, Why.cancelled)
        case .launching: fromLaunching(event)
        case .queued: fromQueued(event)
        case .running: fromRunning(event)
        }
    }

    /// The rejection clauses, in one place for the tests and the docs.
    enum Why {
        static let succeeded = "it already succeeded"
        static let failed = "it already failed"
        static let preempted = "it was already preempted"
        static let lost = "it was already lost"
        static let cancelled = "it was already cancelled"
        static let alreadyQueued = "it is already queued"
        static let alreadyRunning = "it is already running"
    }

    // The launch call was made (or is in flight). The first report may be any later state.
    private static func fromLaunching(_ event: AttemptEvent) -> Result<AttemptTransition, TransitionRejection> {
        let state = AttemptState.launching
        switch event {
        case .accepted: return move(state, .queued, event)
        // Some executors (local, a Slurm with free nodes) report running at once.
        case .started: return move(state, .running, event)
        case .launchFailed(let failure): return move(state, .failed, event, failure.reason)
        case .exited(let code): return exited(state, code, event)
        case .setupFailed: return move(state, .failed, event, .setupFailed)
        case .preempted: return move(state, .preempted, event, .preempted)
        case .lost(let cause): return move(state, .lost, event, cause.reason)
        case .cancelConfirmed(let cause): return move(state, .cancelled, event, cause.reason)
        }
    }

    // Accepted and waiting in the target's queue.
    private static func fromQueued(_ event: AttemptEvent) -> Result<AttemptTransition, TransitionRejection> {
        let state = AttemptState.queued
        switch event {
        // A repeated acceptance is refused rather than recorded twice.
        case .accepted: return reject(state, event, Why.alreadyQueued)
        case .started: return move(state, .running, event)
        // A launch can still fail in the queue (image pull, scheduling, capacity).
        case .launchFailed(let failure): return move(state, .failed, event, failure.reason)
        case .exited(let code): return exited(state, code, event)
        case .setupFailed: return move(state, .failed, event, .setupFailed)
        case .preempted: return move(state, .preempted, event, .preempted)
        case .lost(let cause): return move(state, .lost, event, cause.reason)
        case .cancelConfirmed(let cause): return move(state, .cancelled, event, cause.reason)
        }
    }

    private static func fromRunning(_ event: AttemptEvent) -> Result<AttemptTransition, TransitionRejection> {
        let state = AttemptState.running
        switch event {
        // Never backwards: a late `accepted` or a repeated `started` changes nothing.
        case .accepted, .started: return reject(state, event, Why.alreadyRunning)
        // Once it runs, it has launched; a late launch error is stale.
        case .launchFailed: return reject(state, event, Why.alreadyRunning)
        case .exited(let code): return exited(state, code, event)
        case .setupFailed: return move(state, .failed, event, .setupFailed)
        case .preempted: return move(state, .preempted, event, .preempted)
        case .lost(let cause): return move(state, .lost, event, cause.reason)
        case .cancelConfirmed(let cause): return move(state, .cancelled, event, cause.reason)
        }
    }

    /// Exit code 0 succeeds; anything else (negative codes included: killed by a signal) fails.
    private static func exited(_ state: AttemptState, _ code: Int32, _ event: AttemptEvent) -> Result<AttemptTransition, TransitionRejection> {
        code == 0 ? move(state, .succeeded, event) : move(state, .failed, event, .exitCode)
    }

    private static func move(_ from: AttemptState, _ to: AttemptState, _ event: AttemptEvent, _ reason: FailureReason? = nil) -> Result<AttemptTransition, TransitionRejection> {
        .success(AttemptTransition(from: from, to: to, event: event, reason: reason))
    }

    private static func reject(_ state: AttemptState, _ event: AttemptEvent, _ why: String) -> Result<AttemptTransition, TransitionRejection> {
        .failure(TransitionRejection(.attempt(state, event), why: why))
    }
}
