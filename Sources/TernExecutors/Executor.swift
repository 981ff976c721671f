import Foundation
public import TernModel

/// Runs attempts on one kind of target (DESIGN §7): this machine's processes, a Slurm cluster, a
/// cloud's batch service.
///
/// Every call is keyed by the attempt's idempotency key, which the scheduler writes to PostgreSQL
/// *before* it calls ``launch(_:)``. So a scheduler that crashed anywhere around a launch, and the
/// replica that takes its lease over, can always ask ``find(key:target:)`` whether the launch
/// happened, and ``launch(_:)`` itself returns the first launch's handle when called again with the
/// same key: an attempt is never started twice.
public protocol Executor: Sendable {
    /// Starts the attempt's nodes (each under `tern agent`), or finds the ones a call with the same
    /// key started before.
    /// - Returns: the executor's reference for the attempt (a directory, a Slurm job id …), which the
    ///   scheduler records as `attempts.external_id`.
    /// - Throws: ``ExecutorError`` with ``ExecutorError/Kind/capacity`` when the target has no room
    ///   now, ``ExecutorError/Kind/refused`` when it will not run this attempt at all.
    func launch(_ request: LaunchRequest) async throws -> String

    /// The reference of an attempt launched with `key`, if the target knows one (adoption after a
    /// lease takeover).
    func find(key: String, target: TargetDefinition) async throws -> String?

    /// Where each attempt stands now, by key. An attempt the target does not know is
    /// ``ExecutorStatus/notFound``.
    func status(of attempts: [AttemptHandle]) async throws -> [String: ExecutorStatus]

    /// Asks the attempt to stop: its agent gets SIGTERM (and asks the job for a checkpoint); once
    /// `grace` has passed since the first request, whatever is left is killed. Safe to call again
    /// and again until ``status(of:)`` reports the attempt ended.
    func stop(_ attempt: AttemptHandle, grace: Duration) async throws

    /// The file holding node `node`'s output (the job's stdout and stderr, and the agent's own
    /// lines), when the executor keeps one this machine can read.
    func logFile(_ attempt: AttemptHandle, node: Int) -> String?
}

/// What the scheduler knows of an attempt when it talks to the executor about it.
public struct AttemptHandle: Sendable, Hashable {
    /// The attempt's idempotency key (`attempts.idempotency_key`).
    public var key: String
    /// The executor's reference from ``Executor/launch(_:)``; nil when the launch was never recorded.
    public var externalID: String?
    public var target: TargetDefinition
    /// Nodes the attempt runs on.
    public var nodes: Int

    public init(key: String, externalID: String?, target: TargetDefinition, nodes: Int) {
        self.key = key
        self.externalID = externalID
        self.target = target
        self.nodes = nodes
    }
}

/// An attempt as the executor sees it. The scheduler turns each into an ``AttemptEvent``.
public enum ExecutorStatus: Sendable, Hashable {
    /// Accepted and waiting for nodes.
    case queued
    /// At least one node runs.
    case running
    /// Every node ended; `code` is 0 when all succeeded, else the first non-zero exit code in rank
    /// order (128 + N for a signal).
    case exited(code: Int32)
    /// The `setup` command failed on some node.
    case setupFailed(code: Int32)
    /// The agent could not restore the resume checkpoint (missing, not committed, or a chunk did not
    /// match its manifest); the replica was demoted, and another checkpoint must be chosen.
    case restoreFailed(message: String)
    /// The target failed the attempt before it ran.
    case launchFailed(LaunchFailure, message: String)
    /// The capacity was taken back (spot reclaim, a Slurm preemption).
    case preempted
    /// A node went away without its agent reporting an end.
    case nodeLost(message: String)
    /// An agent stopped itself because the attempt was no longer live in the database.
    case leaseLost
    /// The attempt ended after Tern asked it to stop.
    case stopped
    /// The target knows nothing of the attempt.
    case notFound

    /// The attempt-machine event this status stands for, or nil while it is still live.
    /// - Parameter stopCause: why Tern asked the attempt to stop, when it did.
    public func attemptEvent(stopCause: StopCause?) -> AttemptEvent? {
        switch self {
        case .queued: return .accepted
        case .running: return .started
        case .exited(let code):
            // An attempt Tern stopped ended because it was stopped, whatever code the job chose.
            if let stopCause { return .cancelConfirmed(stopCause) }
            return .exited(code: code)
        case .setupFailed:
            if let stopCause { return .cancelConfirmed(stopCause) }
            return .setupFailed
        case .restoreFailed: return .lost(.restoreFailed)
        case .launchFailed(let failure, _): return .launchFailed(failure)
        case .preempted: return .preempted
        case .nodeLost:
            if let stopCause { return .cancelConfirmed(stopCause) }
            return .lost(.nodeLost)
        case .leaseLost: return .lost(.leaseLost)
        case .stopped: return .cancelConfirmed(stopCause ?? .cancelledByUser)
        case .notFound:
            if let stopCause { return .cancelConfirmed(stopCause) }
            return .lost(.nodeLost)
        }
    }

    /// Whether the attempt has ended on the target.
    public var isFinal: Bool {
        switch self {
        case .queued, .running: false
        case .exited, .setupFailed, .restoreFailed, .launchFailed, .preempted, .nodeLost, .leaseLost, .stopped, .notFound: true
        }
    }

    /// One line for the event log.
    public var summary: String {
        switch self {
        case .queued: "queued"
        case .running: "running"
        case .exited(let code): code == 0 ? "exited 0" : "exited with code \(code)"
        case .setupFailed(let code): "setup exited with code \(code)"
        case .restoreFailed(let message): "restore failed: \(message)"
        case .launchFailed(let failure, let message): "launch failed (\(failure.rawValue)): \(message)"
        case .preempted: "preempted"
        case .nodeLost(let message): "node lost: \(message)"
        case .leaseLost: "the agent stopped: the attempt is no longer live in the database"
        case .stopped: "stopped"
        case .notFound: "the target does not know the attempt"
        }
    }

    /// The exit code to record, when there is one.
    public var exitCode: Int32? {
        switch self {
        case .exited(let code), .setupFailed(let code): code
        default: nil
        }
    }
}

/// An executor call that failed.
public struct ExecutorError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// No room now (slots, nodes, capacity); placement may try again later or elsewhere.
        case capacity
        /// The target will not run this attempt as asked (bad settings, too many nodes).
        case refused
        /// The call failed for a reason that may pass (a command timed out, a controller restarted).
        case transient
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
