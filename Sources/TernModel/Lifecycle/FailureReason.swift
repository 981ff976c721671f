/// Why a job failed, was cancelled or is waiting, or why one attempt ended.
///
/// Stored as the raw value (`jobs.failure_reason`, `attempts.end_reason`, `job_events.reason`), so
/// raw values are snake_case and must never be renamed once shipped: rows written by an older Tern
/// still have to decode. Job-level and attempt-level reasons share one type because most of them
/// are the same fact seen from both sides (an attempt ends with `exit_code`, so does its job).
///
/// Which reasons each machine can produce is decided by ``JobStateMachine`` and
/// ``AttemptStateMachine``; the events carry narrow typed causes (``AttemptFailure``,
/// ``Interruption``, ``LossCause`` …) that map onto these, so no event can carry a reason that makes
/// no sense for it.
public enum FailureReason: String, Sendable, Hashable, CaseIterable, Codable {
    /// The spec cannot be run anywhere as written (found when it is placed, e.g. a target it names
    /// no longer exists). Specs that fail to parse never become jobs.
    case invalidSpec = "invalid_spec"
    /// No target offers what the spec asks for: permanently for a failed job, for now for a
    /// waiting one.
    case noResources = "no_resources"
    /// The target refused or failed to launch the attempt for a reason other than capacity.
    case launchFailed = "launch_failed"
    /// The spec's `setup` command exited non-zero.
    case setupFailed = "setup_failed"
    /// The spec's `run` command exited non-zero (and the code is not retryable, or the restart
    /// budget for retryable codes is spent).
    case exitCode = "exit_code"
    /// The cloud took back the attempt's (spot) capacity.
    case preempted
    /// Preemptions used up the job's restart budget.
    case preemptedTooOften = "preempted_too_often"
    /// A node of the attempt went away (the executor reports it gone).
    case nodeLost = "node_lost"
    /// The control plane stopped hearing the attempt's heartbeat.
    case heartbeatExpired = "heartbeat_expired"
    /// The attempt's agent could not renew its lease on the job and stopped itself, so that two
    /// attempts never write checkpoints for one job at once.
    case leaseLost = "lease_lost"
    /// The checkpoint an attempt was to resume from could not be restored and verified on its
    /// target; the attempt ended before the job started.
    case restoreFailed = "restore_failed"
    /// Lost attempts (node gone, heartbeat or lease lost) used up the job's restart budget.
    case lostTooOften = "lost_too_often"
    /// The job ran past the spec's `timeout`.
    case timeout
    /// A user cancelled the job (`tern cancel`).
    case cancelledByUser = "cancelled_by_user"
    /// The attempt was stopped on purpose to move the job to another target (`tern migrate` or the
    /// scheduler's own choice).
    case migrated

    /// One line for people: what `tern status` prints next to the raw value.
    public var summary: String {
        switch self {
        case .invalidSpec: "the job spec cannot be run as written"
        case .noResources: "no target offers the resources the job asks for"
        case .launchFailed: "the target refused or failed to launch the attempt"
        case .setupFailed: "the setup command exited with a non-zero code"
        case .exitCode: "the run command exited with a non-zero code"
        case .preempted: "the cloud took back the attempt's capacity"
        case .preemptedTooOften: "preempted more often than the restart budget allows"
        case .nodeLost: "a node of the attempt went away"
        case .heartbeatExpired: "the attempt stopped sending heartbeats"
        case .leaseLost: "the attempt could not renew its lease and stopped itself"
        case .restoreFailed: "the resume checkpoint could not be restored and verified"
        case .lostTooOften: "lost more often than the restart budget allows"
        case .timeout: "the job ran past its timeout"
        case .cancelledByUser: "cancelled by a user"
        case .migrated: "stopped to move the job to another target"
        }
    }
}
