import Foundation
import TernExecutors
import TernModel

/// The scheduler's decisions, free of I/O: what an executor's report does to an attempt and its job
/// (through both state machines and the spec's recovery policy), where a job goes next, and what
/// stopping it means. `Scheduler` does the I/O around these.
enum SchedulerDecisions {
    /// The recovery policy's numbers that are the replica's, not the spec's.
    struct Backoff: Sendable {
        var retry: Double
        var maximum: Double

        /// Seconds before the next placement after the interruption `cause`, given the job's
        /// counters before this interruption.
        func delay(after cause: Interruption, restarts: Int, preemptions: Int) -> Double {
            switch cause {
            case .retryableExitCode: min(maximum, retry * pow(2, Double(restarts)))
            case .noCapacity: min(maximum, retry)
            // The first failover is immediate: the job moves to capacity that exists now.
            case .preempted, .lost: preemptions == 0 ? 0 : min(maximum, retry * pow(2, Double(preemptions - 1)))
            }
        }
    }

    /// Why Tern is stopping the job's attempt right now, or nil when it lets it run.
    static func stopCause(for job: OwnedJob) -> StopCause? {
        switch job.state {
        case .cancelling: return .cancelledByUser
        case .migrating: return .migrated
        case .starting, .running:
            if let timeout = job.spec.timeout, let seconds = job.runningSeconds, seconds > Double(timeout.seconds) { return .timeout }
            return nil
        case .pending, .recovering, .succeeded, .failed, .cancelled: return nil
        }
    }

    /// The write recording `status` for the job's live attempt, or nil when nothing changes.
    static func report(_ status: ExecutorStatus, externalID: String?, job: OwnedJob, attempt: LiveAttempt, stopCause: StopCause?,
                       backoff: Backoff) -> JobWrite? {
        guard let attemptEvent = status.attemptEvent(stopCause: stopCause) else { return nil }
        guard case .success(let attemptMove) = AttemptStateMachine.transition(from: attempt.state, on: attemptEvent) else {
            // A repeated or stale report (queued again, running again): nothing to write, unless
            // the launch's reference is still to be recorded.
            guard let externalID, attempt.externalID == nil else { return nil }
            return JobWrite(jobID: job.id, epoch: job.epoch, from: job.state, to: job.state,
                            attempt: AttemptWrite(id: attempt.id, from: attempt.state, to: attempt.state, externalID: externalID))
        }
        var write = JobWrite(jobID: job.id, epoch: job.epoch, from: job.state, to: job.state)
        write.attempt = AttemptWrite(id: attempt.id, from: attemptMove.from, to: attemptMove.to, endReason: attemptMove.reason?.rawValue,
                                     exitCode: status.exitCode, externalID: externalID)
        write.message = "attempt \(attempt.number) on \(attempt.target): \(status.summary)"
        var details = ["attempt": String(attempt.number), "target": attempt.target, "attempt_state": attemptMove.to.rawValue]
        if let code = status.exitCode { details["exit_code"] = String(code) }
        write.details = details

        guard let jobEvent = jobEvent(for: attemptEvent, job: job, write: &write, backoff: backoff) else { return write }
        switch JobStateMachine.transition(from: job.state, on: jobEvent) {
        case .success(let move):
            write.to = move.to
            write.eventKind = move.event.name
            write.jobReason = move.reason?.rawValue
            write.eventReason = move.reason?.rawValue ?? attemptMove.reason?.rawValue
            if move.to != .recovering { write.backoff = nil }
            // The budget is spent only by interruptions the job recovers from (or moves on after);
            // one that ends the job (a cancel, an exhausted budget) counts nothing.
            if move.to != .recovering && move.to != .migrating {
                write.restartsDelta = 0
                write.preemptionsDelta = 0
            }
        case .failure:
            // The job does not take this event in its state (a late report); the attempt's own
            // record is still the truth.
            write.restartsDelta = 0
            write.preemptionsDelta = 0
            write.backoff = nil
        }
        return write
    }

    /// The job-machine event an attempt event stands for, with the recovery policy applied: the
    /// budget, the counters to bump and the backoff go into `write`.
    private static func jobEvent(for event: AttemptEvent, job: OwnedJob, write: inout JobWrite, backoff: Backoff) -> JobEvent? {
        let recovery = job.spec.recovery
        func interrupted(_ cause: Interruption, budgetLeft: Bool) -> JobEvent {
            if budgetLeft {
                write.backoff = backoff.delay(after: cause, restarts: job.restarts, preemptions: job.preemptions)
                switch cause {
                case .retryableExitCode: write.restartsDelta = 1
                case .preempted, .lost: write.preemptionsDelta = 1
                case .noCapacity: break
                }
            }
            return .attemptInterrupted(cause, restartBudgetLeft: budgetLeft)
        }
        switch event {
        case .accepted: return nil
        case .started: return .attemptRunning
        case .exited(let code):
            if code == 0 { return .attemptSucceeded }
            if recovery.recoverOnExitCodes.contains(Int(code)) {
                return interrupted(.retryableExitCode, budgetLeft: job.restarts < recovery.maxRestartsOnErrors)
            }
            return .attemptFailed(.exitCode)
        case .setupFailed: return .attemptFailed(.setupFailed)
        case .launchFailed(.capacity): return interrupted(.noCapacity, budgetLeft: true)
        case .launchFailed(.error): return .attemptFailed(.launchFailed)
        case .preempted: return interrupted(.preempted, budgetLeft: job.preemptions < recovery.maxPreemptions)
        case .lost: return interrupted(.lost, budgetLeft: job.preemptions < recovery.maxPreemptions)
        case .cancelConfirmed(.timeout): return .timedOut
        case .cancelConfirmed: return .attemptStopped
        }
    }

    /// A job event with no attempt involved (a cancelled job with nothing running, a pending job
    /// past its timeout, a placement that found nowhere).
    static func jobOnly(_ event: JobEvent, job: OwnedJob, message: String, details: [String: String]? = nil) -> JobWrite? {
        guard case .success(let move) = JobStateMachine.transition(from: job.state, on: event) else { return nil }
        return JobWrite(jobID: job.id, epoch: job.epoch, from: move.from, to: move.to, eventKind: move.event.name,
                        jobReason: move.reason?.rawValue, eventReason: move.reason?.rawValue, message: message, details: details)
    }
}
