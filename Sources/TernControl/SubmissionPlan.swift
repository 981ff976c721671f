public import TernModel

/// One validated spec that `tern submit` will store: where it can run and the job row it becomes.
public struct SubmissionPlan: Sendable {
    /// The file the spec came from, for messages and output.
    public var file: String
    public var spec: JobSpec
    /// The registered targets that can run it (at least one) and why the others cannot.
    public var candidates: CandidateTargets
    /// The row to insert: the canonical JSON and its hash, encoded once.
    public var job: NewJob

    /// Checks parsed specs against the registered targets and builds their jobs: every target a
    /// spec names must be registered, and at least one registered target must be able to run it.
    ///
    /// Each spec is checked and encoded on its own, in parallel (``Parallel/map(_:workers:_:)``):
    /// canonical JSON and SHA-256 cost about 0.1 ms a spec, which adds up over thousands. The
    /// plans and the problems keep the order of `parsed`. `tern submit` and its benchmark call this.
    /// - Parameters:
    ///   - parsed: Specs that parsed, each with its file.
    ///   - registered: The registered targets (``TargetRepository/definitions()``).
    /// - Returns: A plan for every spec without problems, and the problems of the others.
    public static func make(
        for parsed: [(file: String, spec: ParsedJobSpec)], registered: [TargetDefinition]
    ) async -> (plans: [SubmissionPlan], problems: [SpecDiagnostic]) {
        let known = Set(registered.map(\.name))
        let outcomes = await Parallel.map(parsed.map { Parsed(file: $0.file, spec: $0.spec) }) { item in
            check(item.spec, file: item.file, known: known, registered: registered)
        }
        var plans: [SubmissionPlan] = []
        plans.reserveCapacity(outcomes.count)
        var problems: [SpecDiagnostic] = []
        for outcome in outcomes {
            switch outcome {
            case .plan(let plan): plans.append(plan)
            case .problems(let diagnostics): problems += diagnostics
            }
        }
        return (plans, problems)
    }

    private struct Parsed: Sendable {
        var file: String
        var spec: ParsedJobSpec
    }

    private enum Outcome: Sendable {
        case plan(SubmissionPlan)
        case problems([SpecDiagnostic])
    }

    private static func check(_ parsed: ParsedJobSpec, file: String, known: Set<String>, registered: [TargetDefinition])
        -> Outcome {
        let unknown = parsed.unknownTargets(known: known)
        if !unknown.isEmpty { return .problems(unknown) }
        let candidates = CandidateTargets(spec: parsed.spec, registered: registered)
        if candidates.fitting.isEmpty {
            let reasons = candidates.rejected.map { "\($0.name): \($0.reason)" }
            let why = registered.isEmpty ? "no targets are registered (run `tern targets apply FILE`)" : reasons.joined(separator: "; ")
            return .problems([SpecDiagnostic(location: SourceLocation(file: file, line: 1, column: 1), path: "",
                                             message: "no registered target can run this job: \(why)")])
        }
        return .plan(SubmissionPlan(file: file, spec: parsed.spec, candidates: candidates, job: NewJob(spec: parsed.spec)))
    }
}
