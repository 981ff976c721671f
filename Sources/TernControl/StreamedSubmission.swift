public import TernModel

/// `tern submit` of many spec files: parse, check and store them a batch at a time, so that the
/// server inserts one batch while the next is parsed.
///
/// Submitting in turns (parse everything, then store everything) leaves a core idle for the
/// whole time the server inserts (about a third of the time for 10,000 specs); here the two
/// overlap (``JobRepository/submit(streaming:)``). What the user sees does not change: every
/// spec is parsed and checked and every problem of every file is reported, and a submission with
/// any problem stores nothing (its transaction rolls back). `tern submit` uses this for more than
/// one batch of files without an idempotency key; `TernBench submit` measures it.
public struct StreamedSubmission: Sendable {
    public var repository: JobRepository
    /// The registered targets (``TargetRepository/definitions()``) the specs are checked against.
    public var registered: [TargetDefinition]
    /// Set on every job (relative workdirs run from where the job was submitted).
    public var workdirBase: String?

    public init(repository: JobRepository, registered: [TargetDefinition], workdirBase: String? = nil) {
        self.repository = repository
        self.registered = registered
        self.workdirBase = workdirBase
    }

    public enum Outcome: Sendable {
        /// Every spec was stored: the plans and their records, in the order of the sources.
        case stored(plans: [SubmissionPlan], records: [JobRecord])
        /// Nothing was stored: every problem of every spec, in the order of the sources.
        case problems([SpecDiagnostic])
    }

    /// Parses, checks and stores `sources` in batches of the repository's `submitBatchSize`.
    public func submit(_ sources: [JobSpecSource]) async throws -> Outcome {
        let size = repository.submitBatchSize
        var next = sources.startIndex
        var plans: [SubmissionPlan] = []
        plans.reserveCapacity(sources.count)
        // Like `tern submit` of fewer files: problems within the files (syntax, types, ranges) are
        // reported when there are any; problems with the targets only when there are none.
        var fileProblems: [SpecDiagnostic] = []
        var targetProblems: [SpecDiagnostic] = []
        do {
            let records = try await repository.submit(streaming: {
                while next < sources.endIndex {
                    let batch = Array(sources[next..<min(next + size, sources.endIndex)])
                    next += batch.count
                    let checked = await prepare(batch)
                    plans += checked.plans
                    fileProblems += checked.fileProblems
                    targetProblems += checked.targetProblems
                    // Once anything is wrong nothing will be stored, but the rest is still read,
                    // so that every problem is reported at once.
                    if fileProblems.isEmpty && targetProblems.isEmpty { return checked.plans.map(\.job) }
                }
                if !fileProblems.isEmpty || !targetProblems.isEmpty { throw Abandoned() }
                return nil
            })
            return .stored(plans: plans, records: records)
        } catch is Abandoned {
            return .problems(fileProblems.isEmpty ? targetProblems : fileProblems)
        }
    }

    /// One batch: parse and validate (in parallel), then check against the targets and encode
    /// (in parallel too), as ``SubmissionPlan/make(for:registered:)`` does for a whole submission.
    private func prepare(_ batch: [JobSpecSource]) async
        -> (plans: [SubmissionPlan], fileProblems: [SpecDiagnostic], targetProblems: [SpecDiagnostic]) {
        let (parsed, fileProblems) = await JobSpecParser.parseSplitting(batch)
        var checked = await SubmissionPlan.make(for: parsed, registered: registered)
        if let workdirBase {
            for index in checked.plans.indices { checked.plans[index].job.workdirBase = workdirBase }
        }
        return (checked.plans, fileProblems, checked.problems)
    }

    /// Thrown out of the transaction to roll it back when a spec had a problem.
    private struct Abandoned: Error {}
}
