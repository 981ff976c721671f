/// Where a job stands. Stored in PostgreSQL as the raw value (`jobs.state`).
///
/// `pending → starting → running → succeeded | failed | cancelled`, with `recovering` (the attempt
/// ended by preemption, node loss or a retryable error and a new placement is being made),
/// `migrating` (a move the user asked for or the scheduler chose) and `cancelling` (a cancel was
/// asked while an attempt may still be running). The transitions live in ``JobStateMachine``.
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable {
    case pending
    case starting
    case running
    case recovering
    case migrating
    case cancelling
    case succeeded
    case failed
    case cancelled

    /// A terminal job never changes state again.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .pending, .starting, .running, .recovering, .migrating, .cancelling: false
        }
    }
}

/// Where one attempt (one placement of a job on a target) stands. Stored as `attempts.state`.
///
/// `launching → queued → running → succeeded | failed | preempted | lost | cancelled`.
public enum AttemptState: String, Sendable, Hashable, CaseIterable, Codable {
    case launching
    case queued
    case running
    case succeeded
    case failed
    case preempted
    case lost
    case cancelled

    /// A terminal attempt never changes state again.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .preempted, .lost, .cancelled: true
        case .launching, .queued, .running: false
        }
    }
}
