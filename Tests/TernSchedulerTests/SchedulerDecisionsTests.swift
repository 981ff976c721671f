import Foundation
@testable import TernControl
import TernExecutors
import TernModel
import Testing

/// The scheduler's pure decisions, by table: what each executor report does to the attempt and the
/// job under the spec's recovery policy, and where a job goes next.
@Suite struct SchedulerDecisionsTests {
    static func job(state: JobState = .running, restarts: Int = 0, preemptions: Int = 0, recovery: JobSpec.Recovery = JobSpec.Recovery(),
                    lastTarget: String? = nil, lastState: AttemptState? = nil, targets: [String] = [], runningSeconds: Double? = nil,
                    timeout: Int? = nil) -> OwnedJob {
        var spec = try! JobSpecParser.parse("name: t\nrun: \"true\"\n", file: "t.yaml").get().spec
        spec.recovery = recovery
        spec.placement.targets = targets
        spec.timeout = timeout.map { TimeSpan(seconds: $0) }
        return OwnedJob(id: UUID(), epoch: 7, name: "t", state: state, spec: spec, workdirBase: nil, restarts: restarts, preemptions: preemptions,
                        placementDue: true, runningSeconds: runningSeconds, attempts: 1, lastTarget: lastTarget, lastAttemptState: lastState,
                        migrateTo: nil, stopGrace: nil, live: nil)
    }

    static let live = LiveAttempt(id: UUID(), number: 1, key: "k", target: "a", state: .running, externalID: "x", heartbeatStale: false)
    static let backoff = SchedulerDecisions.Backoff(retry: 5, maximum: 300)
    static let retry75 = JobSpec.Recovery(maxRestartsOnErrors: 2, recoverOnExitCodes: [75], onPreemption: .failover, maxPreemptions: 1)

    struct Row: Sendable, CustomTestStringConvertible {
        var status: ExecutorStatus
        var job: OwnedJob
        var stop: StopCause?
        var attemptTo: AttemptState
        var jobTo: JobState
        var reason: String?
        var restarts: Int = 0
        var preemptions: Int = 0
        var backoff: Double?
        var attemptFrom: AttemptState = .running
        var testDescription: String { "\(status.summary) in \(job.state.rawValue)" }
    }

    static let rows: [Row] = [
        Row(status: .exited(code: 0), job: job(), attemptTo: .succeeded, jobTo: .succeeded),
        Row(status: .exited(code: 3), job: job(recovery: retry75), attemptTo: .failed, jobTo: .failed, reason: "exit_code"),
        Row(status: .exited(code: 75), job: job(recovery: retry75), attemptTo: .failed, jobTo: .recovering, restarts: 1, backoff: 5),
        Row(status: .exited(code: 75), job: job(restarts: 1, recovery: retry75), attemptTo: .failed, jobTo: .recovering, restarts: 1, backoff: 10),
        Row(status: .exited(code: 75), job: job(restarts: 2, recovery: retry75), attemptTo: .failed, jobTo: .failed, reason: "exit_code"),
        Row(status: .setupFailed(code: 1), job: job(), attemptTo: .failed, jobTo: .failed, reason: "setup_failed"),
        Row(status: .preempted, job: job(recovery: retry75), attemptTo: .preempted, jobTo: .recovering, preemptions: 1, backoff: 0),
        Row(status: .preempted, job: job(preemptions: 1, recovery: retry75), attemptTo: .preempted, jobTo: .failed, reason: "preempted_too_often"),
        Row(status: .nodeLost(message: "gone"), job: job(), attemptTo: .lost, jobTo: .recovering, preemptions: 1, backoff: 0),
        Row(status: .restoreFailed(message: "bad chunk"), job: job(), attemptTo: .lost, jobTo: .recovering, preemptions: 1, backoff: 0),
        Row(status: .leaseLost, job: job(), attemptTo: .lost, jobTo: .recovering, preemptions: 1, backoff: 0),
        Row(status: .launchFailed(.capacity, message: "full"), job: job(state: .starting), attemptTo: .failed, jobTo: .recovering, backoff: 5, attemptFrom: .launching),
        Row(status: .launchFailed(.error, message: "no"), job: job(state: .starting), attemptTo: .failed, jobTo: .failed, reason: "launch_failed", attemptFrom: .launching),
        // Stops Tern asked for: whatever the job did on its way out, the stop is what happened.
        Row(status: .stopped, job: job(state: .cancelling), stop: .cancelledByUser, attemptTo: .cancelled, jobTo: .cancelled, reason: "cancelled_by_user"),
        Row(status: .exited(code: 143), job: job(state: .cancelling), stop: .cancelledByUser, attemptTo: .cancelled, jobTo: .cancelled, reason: "cancelled_by_user"),
        Row(status: .notFound, job: job(state: .cancelling), stop: .cancelledByUser, attemptTo: .cancelled, jobTo: .cancelled, reason: "cancelled_by_user"),
        Row(status: .stopped, job: job(state: .running), stop: .timeout, attemptTo: .cancelled, jobTo: .failed, reason: "timeout"),
        Row(status: .stopped, job: job(state: .migrating), stop: .migrated, attemptTo: .cancelled, jobTo: .migrating),
        // A preemption during a cancel still ends the job cancelled; the attempt keeps its truth.
        Row(status: .preempted, job: job(state: .cancelling), stop: .cancelledByUser, attemptTo: .preempted, jobTo: .cancelled, reason: "cancelled_by_user"),
    ]

    @Test("reports become fenced writes through both state machines and the recovery policy", arguments: rows)
    func report(row: Row) throws {
        var attempt = Self.live
        attempt.state = row.attemptFrom
        let write = try #require(SchedulerDecisions.report(row.status, externalID: nil, job: row.job, attempt: attempt, stopCause: row.stop,
                                                           backoff: Self.backoff))
        #expect(write.epoch == 7)
        #expect(write.from == row.job.state)
        #expect(write.attempt?.to == row.attemptTo)
        #expect(write.to == row.jobTo)
        #expect(write.jobReason == row.reason)
        #expect(write.restartsDelta == row.restarts)
        #expect(write.preemptionsDelta == row.preemptions)
        #expect(write.backoff == row.backoff)
        #expect(write.eventKind != nil)
    }

    @Test("progress the job does not see (queued) writes only the attempt; a repeated report writes nothing")
    func quietReports() throws {
        var launching = Self.live
        launching.state = .launching
        launching.externalID = nil
        let queued = try #require(SchedulerDecisions.report(.queued, externalID: "42", job: Self.job(state: .starting), attempt: launching, stopCause: nil, backoff: Self.backoff))
        #expect(queued.attempt?.to == .queued)
        #expect(queued.attempt?.externalID == "42")
        #expect(queued.to == .starting)
        #expect(queued.eventKind == nil)
        #expect(SchedulerDecisions.report(.running, externalID: "x", job: Self.job(), attempt: Self.live, stopCause: nil, backoff: Self.backoff) == nil)
        let started = try #require(SchedulerDecisions.report(.running, externalID: "42", job: Self.job(state: .starting), attempt: launching, stopCause: nil, backoff: Self.backoff))
        #expect(started.to == .running && started.attempt?.to == .running && started.eventKind == "attempt_running")
    }

    @Test("stop causes: cancelling, migrating, and running past the timeout")
    func stopCauses() {
        #expect(SchedulerDecisions.stopCause(for: Self.job(state: .cancelling)) == .cancelledByUser)
        #expect(SchedulerDecisions.stopCause(for: Self.job(state: .migrating)) == .migrated)
        #expect(SchedulerDecisions.stopCause(for: Self.job(runningSeconds: 100, timeout: 60)) == .timeout)
        #expect(SchedulerDecisions.stopCause(for: Self.job(runningSeconds: 10, timeout: 60)) == nil)
        #expect(SchedulerDecisions.stopCause(for: Self.job()) == nil)
    }

    @Test("backoff: doubling per retry up to the cap; the first failover is immediate")
    func backoffGrowth() {
        let backoff = SchedulerDecisions.Backoff(retry: 5, maximum: 30)
        #expect((0..<5).map { backoff.delay(after: .retryableExitCode, restarts: $0, preemptions: 0) } == [5, 10, 20, 30, 30])
        #expect((0..<4).map { backoff.delay(after: .preempted, restarts: 0, preemptions: $0) } == [0, 5, 10, 20])
        #expect(backoff.delay(after: .noCapacity, restarts: 9, preemptions: 9) == 5)
    }
}

/// The scheduler loop's sleep: a wake ends it, and ending it never arms the next one by itself.
@Suite struct WakerTests {
    @Test("a wake before the wait ends the wait at once, once; the cancelled timer wakes nobody")
    func wakeIsConsumedOnce() async {
        let waker = Waker()
        waker.wake()
        #expect(waker.isPending)
        await waker.wait(for: .seconds(3600))
        #expect(!waker.isPending, "the wake was used up, and the timer's cancellation did not set another")
        // A wake from elsewhere ends a wait, whether it comes before the wait starts or during it.
        let woken = Task { await waker.wait(for: .seconds(3600)) }
        waker.wake()
        await woken.value
        #expect(!waker.isPending)
    }
}
