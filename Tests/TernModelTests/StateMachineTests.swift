import Testing
import TernModel

// Exhaustive table tests of the job and attempt state machines (a fake of ours: these check the
// machines against the lifecycle we wrote down in docs/lifecycle.md, nothing external).
//
// Every (state, event) pair has an expected outcome written out by hand below, independent of the
// code's structure: a target state with its reason, or a rejection with its exact words. The
// `allEvents` lists hold every payload combination of every event case, and a switch-based check
// proves they name every case, so a new event or payload value fails here until the table grows.

/// What one (state, event) pair must give.
enum Expect<State: Hashable & Sendable>: Hashable, Sendable, CustomStringConvertible {
    case to(State, FailureReason?)
    case no(String)

    var description: String {
        switch self {
        case .to(let state, let reason): "to \(state)" + (reason.map { " (\($0.rawValue))" } ?? "")
        case .no(let why): "rejected: \(why)"
        }
    }
}

extension Expect {
    /// A transition without a reason.
    static func to(_ state: State) -> Self { .to(state, nil) }
}

// MARK: - Job table

/// One row of the job table: an event and its outcome in each of the nine job states.
struct JobRow: Sendable, CustomTestStringConvertible {
    let event: JobEvent
    let outcomes: [JobState: Expect<JobState>]

    init(
        _ event: JobEvent,
        pending: Expect<JobState>, starting: Expect<JobState>, running: Expect<JobState>,
        recovering: Expect<JobState>, migrating: Expect<JobState>, cancelling: Expect<JobState>,
        succeeded: Expect<JobState>, failed: Expect<JobState>, cancelled: Expect<JobState>
    ) {
        self.event = event
        self.outcomes = [
            .pending: pending, .starting: starting, .running: running,
            .recovering: recovering, .migrating: migrating, .cancelling: cancelling,
            .succeeded: succeeded, .failed: failed, .cancelled: cancelled,
        ]
    }

    var testDescription: String { "\(event)" }
}

/// The rejection clauses, spelled out here rather than read from the code.
private let jobSucceeded = Expect<JobState>.no("it already succeeded")
private let jobFailed = Expect<JobState>.no("it already failed")
private let jobCancelled = Expect<JobState>.no("it was already cancelled")
private let noAttempt = Expect<JobState>.no("it has no live attempt")
private let hasAttempt = Expect<JobState>.no("it already has a live attempt")
private let alreadyRunning = Expect<JobState>.no("its attempt is already running")
private let alreadyPlaced = Expect<JobState>.no("its attempt is already placed")
private let notPlaced = Expect<JobState>.no("it has not been placed yet, so there is nothing to move")
private let alreadyMigrating = Expect<JobState>.no("it is already migrating")
private let alreadyCancelling = Expect<JobState>.no("it is already cancelling")
private let noStopAsked = Expect<JobState>.no("no stop was asked for (only cancel and migrate stop an attempt)")

enum JobTable {
    /// Every job event: one value per payload combination.
    static let allEvents: [JobEvent] = rows.map(\.event)

    /// The expected outcome of every (state, event) pair.
    static let rows: [JobRow] = [
        JobRow(.attemptLaunched,
               pending: .to(.starting), starting: hasAttempt, running: hasAttempt,
               recovering: .to(.starting), migrating: .to(.starting), cancelling: .to(.cancelling),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptRunning,
               pending: noAttempt, starting: .to(.running), running: alreadyRunning,
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelling),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptSucceeded,
               pending: noAttempt, starting: .to(.succeeded), running: .to(.succeeded),
               recovering: noAttempt, migrating: .to(.succeeded), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),

        JobRow(.attemptInterrupted(.preempted, restartBudgetLeft: true),
               pending: noAttempt, starting: .to(.recovering), running: .to(.recovering),
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.preempted, restartBudgetLeft: false),
               pending: noAttempt, starting: .to(.failed, .preemptedTooOften), running: .to(.failed, .preemptedTooOften),
               recovering: noAttempt, migrating: .to(.failed, .preemptedTooOften), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.lost, restartBudgetLeft: true),
               pending: noAttempt, starting: .to(.recovering), running: .to(.recovering),
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.lost, restartBudgetLeft: false),
               pending: noAttempt, starting: .to(.failed, .lostTooOften), running: .to(.failed, .lostTooOften),
               recovering: noAttempt, migrating: .to(.failed, .lostTooOften), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.retryableExitCode, restartBudgetLeft: true),
               pending: noAttempt, starting: .to(.recovering), running: .to(.recovering),
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.retryableExitCode, restartBudgetLeft: false),
               pending: noAttempt, starting: .to(.failed, .exitCode), running: .to(.failed, .exitCode),
               recovering: noAttempt, migrating: .to(.failed, .exitCode), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.noCapacity, restartBudgetLeft: true),
               pending: noAttempt, starting: .to(.recovering), running: .to(.recovering),
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptInterrupted(.noCapacity, restartBudgetLeft: false),
               pending: noAttempt, starting: .to(.failed, .noResources), running: .to(.failed, .noResources),
               recovering: noAttempt, migrating: .to(.failed, .noResources), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),

        JobRow(.attemptFailed(.launchFailed),
               pending: noAttempt, starting: .to(.failed, .launchFailed), running: .to(.failed, .launchFailed),
               recovering: noAttempt, migrating: .to(.failed, .launchFailed), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptFailed(.setupFailed),
               pending: noAttempt, starting: .to(.failed, .setupFailed), running: .to(.failed, .setupFailed),
               recovering: noAttempt, migrating: .to(.failed, .setupFailed), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptFailed(.exitCode),
               pending: noAttempt, starting: .to(.failed, .exitCode), running: .to(.failed, .exitCode),
               recovering: noAttempt, migrating: .to(.failed, .exitCode), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),

        JobRow(.placementFailed(.capacityUnavailable),
               pending: .to(.pending, .noResources), starting: alreadyPlaced, running: alreadyPlaced,
               recovering: .to(.recovering, .noResources), migrating: .to(.migrating, .noResources), cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.placementFailed(.noMatchingOffer),
               pending: .to(.failed, .noResources), starting: alreadyPlaced, running: alreadyPlaced,
               recovering: .to(.failed, .noResources), migrating: .to(.recovering, .noResources), cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.placementFailed(.invalidSpec),
               pending: .to(.failed, .invalidSpec), starting: alreadyPlaced, running: alreadyPlaced,
               recovering: .to(.failed, .invalidSpec), migrating: .to(.failed, .invalidSpec), cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),

        JobRow(.migrateRequested(by: .user),
               pending: notPlaced, starting: .to(.migrating), running: .to(.migrating),
               recovering: .to(.migrating), migrating: alreadyMigrating, cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.migrateRequested(by: .scheduler),
               pending: notPlaced, starting: .to(.migrating), running: .to(.migrating),
               recovering: .to(.migrating), migrating: alreadyMigrating, cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),

        JobRow(.cancelRequested,
               pending: .to(.cancelled, .cancelledByUser), starting: .to(.cancelling), running: .to(.cancelling),
               recovering: .to(.cancelling), migrating: .to(.cancelling), cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.attemptStopped,
               pending: noAttempt, starting: noStopAsked, running: noStopAsked,
               recovering: noAttempt, migrating: .to(.migrating), cancelling: .to(.cancelled, .cancelledByUser),
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
        JobRow(.timedOut,
               pending: .to(.failed, .timeout), starting: .to(.failed, .timeout), running: .to(.failed, .timeout),
               recovering: .to(.failed, .timeout), migrating: .to(.failed, .timeout), cancelling: alreadyCancelling,
               succeeded: jobSucceeded, failed: jobFailed, cancelled: jobCancelled),
    ]

    /// Every payload combination, built from the payload types' `allCases`, to compare with the
    /// hand-written rows: a new payload value shows up here and fails the coverage test.
    static var everyCombination: Set<JobEvent> {
        var events: Set<JobEvent> = [.attemptLaunched, .attemptRunning, .attemptSucceeded, .cancelRequested, .attemptStopped, .timedOut]
        for cause in Interruption.allCases {
            for budgetLeft in [true, false] { events.insert(.attemptInterrupted(cause, restartBudgetLeft: budgetLeft)) }
        }
        for failure in AttemptFailure.allCases { events.insert(.attemptFailed(failure)) }
        for problem in PlacementProblem.allCases { events.insert(.placementFailed(problem)) }
        for requester in MigrationRequester.allCases { events.insert(.migrateRequested(by: requester)) }
        return events
    }
}

/// The job event's case, without payload. The exhaustive switch is the point: a new `JobEvent`
/// case does not compile here until it is listed, and then the coverage test wants a row for it.
enum JobEventKind: CaseIterable {
    case attemptLaunched, attemptRunning, attemptSucceeded, attemptInterrupted, attemptFailed
    case placementFailed, migrateRequested, cancelRequested, attemptStopped, timedOut

    init(_ event: JobEvent) {
        switch event {
        case .attemptLaunched: self = .attemptLaunched
        case .attemptRunning: self = .attemptRunning
        case .attemptSucceeded: self = .attemptSucceeded
        case .attemptInterrupted: self = .attemptInterrupted
        case .attemptFailed: self = .attemptFailed
        case .placementFailed: self = .placementFailed
        case .migrateRequested: self = .migrateRequested
        case .cancelRequested: self = .cancelRequested
        case .attemptStopped: self = .attemptStopped
        case .timedOut: self = .timedOut
        }
    }
}

// MARK: - Attempt table

/// One row of the attempt table: an event and its outcome in each of the eight attempt states.
struct AttemptRow: Sendable, CustomTestStringConvertible {
    let event: AttemptEvent
    let outcomes: [AttemptState: Expect<AttemptState>]

    init(
        _ event: AttemptEvent,
        launching: Expect<AttemptState>, queued: Expect<AttemptState>, running: Expect<AttemptState>,
        succeeded: Expect<AttemptState>, failed: Expect<AttemptState>, preempted: Expect<AttemptState>,
        lost: Expect<AttemptState>, cancelled: Expect<AttemptState>
    ) {
        self.event = event
        self.outcomes = [
            .launching: launching, .queued: queued, .running: running,
            .succeeded: succeeded, .failed: failed, .preempted: preempted, .lost: lost, .cancelled: cancelled,
        ]
    }

    var testDescription: String { "\(event)" }
}

private let attemptSucceeded = Expect<AttemptState>.no("it already succeeded")
private let attemptFailed = Expect<AttemptState>.no("it already failed")
private let attemptPreempted = Expect<AttemptState>.no("it was already preempted")
private let attemptLost = Expect<AttemptState>.no("it was already lost")
private let attemptCancelled = Expect<AttemptState>.no("it was already cancelled")
private let attemptQueued = Expect<AttemptState>.no("it is already queued")
private let attemptRunning = Expect<AttemptState>.no("it is already running")

enum AttemptTable {
    /// Every attempt event: one value per payload combination, and exit codes 0, 1 and -9.
    static let allEvents: [AttemptEvent] = rows.map(\.event)

    /// The expected outcome of every (state, event) pair.
    static let rows: [AttemptRow] = [
        AttemptRow(.accepted,
                   launching: .to(.queued), queued: attemptQueued, running: attemptRunning,
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.started,
                   launching: .to(.running), queued: .to(.running), running: attemptRunning,
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.exited(code: 0),
                   launching: .to(.succeeded), queued: .to(.succeeded), running: .to(.succeeded),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.exited(code: 1),
                   launching: .to(.failed, .exitCode), queued: .to(.failed, .exitCode), running: .to(.failed, .exitCode),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.exited(code: -9),
                   launching: .to(.failed, .exitCode), queued: .to(.failed, .exitCode), running: .to(.failed, .exitCode),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.setupFailed,
                   launching: .to(.failed, .setupFailed), queued: .to(.failed, .setupFailed), running: .to(.failed, .setupFailed),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.launchFailed(.capacity),
                   launching: .to(.failed, .noResources), queued: .to(.failed, .noResources), running: attemptRunning,
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.launchFailed(.error),
                   launching: .to(.failed, .launchFailed), queued: .to(.failed, .launchFailed), running: attemptRunning,
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.preempted,
                   launching: .to(.preempted, .preempted), queued: .to(.preempted, .preempted), running: .to(.preempted, .preempted),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.lost(.heartbeatExpired),
                   launching: .to(.lost, .heartbeatExpired), queued: .to(.lost, .heartbeatExpired), running: .to(.lost, .heartbeatExpired),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.lost(.nodeLost),
                   launching: .to(.lost, .nodeLost), queued: .to(.lost, .nodeLost), running: .to(.lost, .nodeLost),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.lost(.leaseLost),
                   launching: .to(.lost, .leaseLost), queued: .to(.lost, .leaseLost), running: .to(.lost, .leaseLost),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.lost(.restoreFailed),
                   launching: .to(.lost, .restoreFailed), queued: .to(.lost, .restoreFailed), running: .to(.lost, .restoreFailed),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.cancelConfirmed(.cancelledByUser),
                   launching: .to(.cancelled, .cancelledByUser), queued: .to(.cancelled, .cancelledByUser), running: .to(.cancelled, .cancelledByUser),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.cancelConfirmed(.migrated),
                   launching: .to(.cancelled, .migrated), queued: .to(.cancelled, .migrated), running: .to(.cancelled, .migrated),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
        AttemptRow(.cancelConfirmed(.timeout),
                   launching: .to(.cancelled, .timeout), queued: .to(.cancelled, .timeout), running: .to(.cancelled, .timeout),
                   succeeded: attemptSucceeded, failed: attemptFailed, preempted: attemptPreempted, lost: attemptLost, cancelled: attemptCancelled),
    ]

    /// Every finite payload combination (exit codes are represented by 0, 1 and -9).
    static var everyCombination: Set<AttemptEvent> {
        var events: Set<AttemptEvent> = [.accepted, .started, .exited(code: 0), .exited(code: 1), .exited(code: -9), .setupFailed, .preempted]
        for failure in LaunchFailure.allCases { events.insert(.launchFailed(failure)) }
        for cause in LossCause.allCases { events.insert(.lost(cause)) }
        for cause in StopCause.allCases { events.insert(.cancelConfirmed(cause)) }
        return events
    }
}

/// The attempt event's case, without payload; exhaustive for the same reason as ``JobEventKind``.
enum AttemptEventKind: CaseIterable {
    case accepted, started, exited, setupFailed, launchFailed, preempted, lost, cancelConfirmed

    init(_ event: AttemptEvent) {
        switch event {
        case .accepted: self = .accepted
        case .started: self = .started
        case .exited: self = .exited
        case .setupFailed: self = .setupFailed
        case .launchFailed: self = .launchFailed
        case .preempted: self = .preempted
        case .lost: self = .lost
        case .cancelConfirmed: self = .cancelConfirmed
        }
    }
}

// MARK: - Helpers

/// Lower-case words joined by single underscores.
private func isSnakeCase(_ name: String) -> Bool {
    guard let first = name.first, let last = name.last, first != "_", last != "_", !name.contains("__") else { return false }
    return name.allSatisfy { ("a"..."z").contains($0) || $0 == "_" }
}

// MARK: - Tests

@Suite("State machines")
struct StateMachineTests {
    // MARK: Job

    @Test("job table: every state", arguments: JobTable.rows)
    func jobRow(_ row: JobRow) {
        #expect(Set(row.outcomes.keys) == Set(JobState.allCases))
        for state in JobState.allCases {
            let expected = row.outcomes[state]
            let result = JobStateMachine.transition(from: state, on: row.event)
            switch result {
            case .success(let transition):
                #expect(Expect.to(transition.to, transition.reason) == expected, "\(state) + \(row.event)")
                #expect(transition.from == state)
                #expect(transition.event == row.event)
                #expect(transition.changesState == (transition.from != transition.to))
            case .failure(let rejection):
                #expect(Expect<JobState>.no(rejection.why) == expected, "\(state) + \(row.event)")
                #expect(rejection.subject == .job(state, row.event))
                #expect(rejection.state == state.rawValue)
                #expect(rejection.event == row.event.name)
            }
        }
    }

    @Test("job table covers every event case and payload, once")
    func jobCoverage() {
        #expect(Set(JobTable.allEvents.map(JobEventKind.init)).count == JobEventKind.allCases.count)
        #expect(Set(JobTable.allEvents) == JobTable.everyCombination)
        #expect(Set(JobTable.allEvents).count == JobTable.allEvents.count, "a row is listed twice")
    }

    @Test("terminal job states reject every event with the state's own words")
    func jobTerminal() {
        let words: [JobState: String] = [.succeeded: "it already succeeded", .failed: "it already failed", .cancelled: "it was already cancelled"]
        for state in JobState.allCases where state.isTerminal {
            for event in JobTable.allEvents {
                let result = JobStateMachine.transition(from: state, on: event)
                #expect(throws: TransitionRejection(.job(state, event), why: words[state]!)) { try result.get() }
            }
        }
        // And the live states each accept something: none is a dead end.
        for state in JobState.allCases where !state.isTerminal {
            #expect(JobTable.allEvents.contains { (try? JobStateMachine.transition(from: state, on: $0).get()) != nil })
        }
    }

    @Test("job transitions carry reasons exactly where the job fails, is cancelled or waits for resources")
    func jobReasons() {
        for state in JobState.allCases {
            for event in JobTable.allEvents {
                guard let transition = try? JobStateMachine.transition(from: state, on: event).get() else { continue }
                switch transition.to {
                case .failed: #expect(transition.reason != nil)
                case .cancelled: #expect(transition.reason == .cancelledByUser)
                case .pending, .starting, .running, .recovering, .migrating, .cancelling, .succeeded:
                    // Only a placement that found nothing records a reason without ending the job.
                    if case .placementFailed = event {
                        #expect(transition.reason == .noResources)
                    } else {
                        #expect(transition.reason == nil)
                    }
                }
            }
        }
    }

    @Test("job rejection messages")
    func jobMessages() {
        func message(_ state: JobState, _ event: JobEvent) -> String? {
            if case .failure(let rejection) = JobStateMachine.transition(from: state, on: event) { return rejection.description }
            return nil
        }
        #expect(message(.succeeded, .cancelRequested) == "cannot cancel job: it already succeeded")
        #expect(message(.failed, .cancelRequested) == "cannot cancel job: it already failed")
        #expect(message(.cancelled, .cancelRequested) == "cannot cancel job: it was already cancelled")
        #expect(message(.cancelling, .cancelRequested) == "cannot cancel job: it is already cancelling")
        #expect(message(.migrating, .migrateRequested(by: .user)) == "cannot migrate job: it is already migrating")
        #expect(message(.pending, .migrateRequested(by: .user)) == "cannot migrate job: it has not been placed yet, so there is nothing to move")
        #expect(message(.pending, .attemptRunning) == "cannot mark job running: it has no live attempt")
        #expect(message(.running, .attemptLaunched) == "cannot launch an attempt for job: it already has a live attempt")
        #expect(message(.cancelling, .timedOut) == "cannot time out job: it is already cancelling")
        #expect(message(.running, .attemptStopped) == "cannot record a stopped attempt for job: no stop was asked for (only cancel and migrate stop an attempt)")
        let rejection = TransitionRejection(.job(.succeeded, .cancelRequested), why: "it already succeeded")
        #expect(rejection.state == "succeeded")
        #expect(rejection.event == "cancel_requested")
        #expect("\(rejection)" == "cannot cancel job: it already succeeded")
    }

    @Test("job event names are unique snake_case")
    func jobNames() {
        var nameOfKind: [JobEventKind: String] = [:]
        for event in JobTable.allEvents {
            #expect(isSnakeCase(event.name), "\(event.name)")
            let kind = JobEventKind(event)
            if let seen = nameOfKind[kind] { #expect(seen == event.name, "one case, one name") }
            nameOfKind[kind] = event.name
        }
        #expect(Set(nameOfKind.values).count == JobEventKind.allCases.count)
    }

    @Test("typical job lifecycles, step by step")
    func jobWalks() throws {
        func walk(_ events: [JobEvent]) throws -> [JobState] {
            var state = JobState.pending
            var states = [state]
            for event in events {
                state = try JobStateMachine.transition(from: state, on: event).get().to
                states.append(state)
            }
            return states
        }
        #expect(try walk([.attemptLaunched, .attemptRunning, .attemptSucceeded]) == [.pending, .starting, .running, .succeeded])
        // Preempted once, recovered on another target, then finished.
        #expect(try walk([
            .placementFailed(.capacityUnavailable), .attemptLaunched, .attemptRunning,
            .attemptInterrupted(.preempted, restartBudgetLeft: true), .attemptLaunched, .attemptRunning, .attemptSucceeded,
        ]) == [.pending, .pending, .starting, .running, .recovering, .starting, .running, .succeeded])
        // `tern migrate`: stop, place elsewhere, resume.
        #expect(try walk([
            .attemptLaunched, .attemptRunning, .migrateRequested(by: .user), .attemptStopped, .attemptLaunched, .attemptRunning,
        ]) == [.pending, .starting, .running, .migrating, .migrating, .starting, .running])
        // `tern cancel` while running: wait for the attempt to be gone.
        #expect(try walk([.attemptLaunched, .attemptRunning, .cancelRequested, .attemptStopped])
            == [.pending, .starting, .running, .cancelling, .cancelled])
        // `tern cancel` while recovering: a launch in flight lands, then is stopped.
        #expect(try walk([
            .attemptLaunched, .attemptInterrupted(.lost, restartBudgetLeft: true), .cancelRequested, .attemptLaunched, .attemptStopped,
        ]) == [.pending, .starting, .recovering, .cancelling, .cancelling, .cancelled])
    }

    // MARK: Attempt

    @Test("attempt table: every state", arguments: AttemptTable.rows)
    func attemptRow(_ row: AttemptRow) {
        #expect(Set(row.outcomes.keys) == Set(AttemptState.allCases))
        for state in AttemptState.allCases {
            let expected = row.outcomes[state]
            switch AttemptStateMachine.transition(from: state, on: row.event) {
            case .success(let transition):
                #expect(Expect.to(transition.to, transition.reason) == expected, "\(state) + \(row.event)")
                #expect(transition.from == state)
                #expect(transition.event == row.event)
            case .failure(let rejection):
                #expect(Expect<AttemptState>.no(rejection.why) == expected, "\(state) + \(row.event)")
                #expect(rejection.subject == .attempt(state, row.event))
                #expect(rejection.state == state.rawValue)
                #expect(rejection.event == row.event.name)
            }
        }
    }

    @Test("attempt table covers every event case and payload, once")
    func attemptCoverage() {
        #expect(Set(AttemptTable.allEvents.map(AttemptEventKind.init)).count == AttemptEventKind.allCases.count)
        #expect(Set(AttemptTable.allEvents) == AttemptTable.everyCombination)
        #expect(Set(AttemptTable.allEvents).count == AttemptTable.allEvents.count, "a row is listed twice")
    }

    @Test("terminal attempt states reject every event; ended attempts always say why")
    func attemptTerminal() {
        let words: [AttemptState: String] = [
            .succeeded: "it already succeeded", .failed: "it already failed", .preempted: "it was already preempted",
            .lost: "it was already lost", .cancelled: "it was already cancelled",
        ]
        for state in AttemptState.allCases where state.isTerminal {
            for event in AttemptTable.allEvents {
                let result = AttemptStateMachine.transition(from: state, on: event)
                #expect(throws: TransitionRejection(.attempt(state, event), why: words[state]!)) { try result.get() }
            }
        }
        for state in AttemptState.allCases where !state.isTerminal {
            for event in AttemptTable.allEvents {
                guard let transition = try? AttemptStateMachine.transition(from: state, on: event).get() else { continue }
                // A reason exactly when the attempt ended other than by success.
                #expect((transition.reason != nil) == (transition.to.isTerminal && transition.to != .succeeded))
            }
        }
    }

    @Test("attempt rejection messages and names")
    func attemptMessages() {
        func message(_ state: AttemptState, _ event: AttemptEvent) -> String? {
            if case .failure(let rejection) = AttemptStateMachine.transition(from: state, on: event) { return rejection.description }
            return nil
        }
        #expect(message(.succeeded, .started) == "cannot mark attempt running: it already succeeded")
        #expect(message(.preempted, .cancelConfirmed(.cancelledByUser)) == "cannot mark attempt cancelled: it was already preempted")
        #expect(message(.running, .accepted) == "cannot mark attempt queued: it is already running")
        #expect(message(.queued, .accepted) == "cannot mark attempt queued: it is already queued")
        #expect(message(.running, .launchFailed(.error)) == "cannot record a launch failure of attempt: it is already running")

        var nameOfKind: [AttemptEventKind: String] = [:]
        for event in AttemptTable.allEvents {
            #expect(isSnakeCase(event.name), "\(event.name)")
            nameOfKind[AttemptEventKind(event)] = event.name
        }
        #expect(Set(nameOfKind.values).count == AttemptEventKind.allCases.count)
    }

    // MARK: Reasons

    @Test("failure reasons: snake_case raw values, the design's names, a summary each")
    func reasons() {
        for reason in FailureReason.allCases {
            #expect(isSnakeCase(reason.rawValue), "\(reason.rawValue)")
            #expect(!reason.summary.isEmpty)
            #expect(FailureReason(rawValue: reason.rawValue) == reason)
        }
        #expect(Set(FailureReason.allCases.map(\.summary)).count == FailureReason.allCases.count)
        let required = [
            "invalid_spec", "no_resources", "launch_failed", "setup_failed", "exit_code", "preempted_too_often",
            "lost_too_often", "timeout", "cancelled_by_user", "lease_lost",
        ]
        for name in required { #expect(FailureReason(rawValue: name) != nil, "\(name)") }
        // Payload enums stored beside events are snake_case too.
        let payloads = Interruption.allCases.map(\.rawValue) + AttemptFailure.allCases.map(\.rawValue)
            + PlacementProblem.allCases.map(\.rawValue) + MigrationRequester.allCases.map(\.rawValue)
            + LaunchFailure.allCases.map(\.rawValue) + LossCause.allCases.map(\.rawValue) + StopCause.allCases.map(\.rawValue)
        for raw in payloads { #expect(isSnakeCase(raw), "\(raw)") }
    }
}
