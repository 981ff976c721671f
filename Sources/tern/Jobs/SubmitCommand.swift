import ArgumentParser
import Foundation
import TernControl
import TernModel
import TernPostgres

/// `tern submit FILE…`
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Validate job spec files and submit them as jobs.",
        discussion: """
            Every file is validated first; if any has a problem, every problem of every file is \
            printed as FILE:LINE:COLUMN: FIELD: MESSAGE and nothing is submitted (exit code 2). \
            Targets named in placement.targets and checkpoint.replicate_to must be registered \
            (tern targets apply), and at least one registered target must be able to run the job.

            With --dry-run nothing is stored: the normalised spec, its hash and the candidate \
            targets are printed instead. See docs/jobspec.md for the format.
            """)

    @Argument(help: ArgumentHelp("Job spec files (YAML).", valueName: "file")) var files: [String]
    @Flag(help: "Validate and show the normalised spec and candidate targets without submitting.") var dryRun = false
    @Option(help: ArgumentHelp(
        "A key that makes the submission idempotent: submitting again with the same key returns the job already stored. With several files, FILE's position is appended (KEY-1, KEY-2, …).",
        valueName: "key"))
    var idempotencyKey: String?
    @Flag(help: "Print the result as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one job spec file") }
        if let idempotencyKey, idempotencyKey.isEmpty { throw ValidationError("--idempotency-key must not be empty") }
    }

    func run() async throws {
        // Many files: parsed, checked and stored a batch at a time, the server inserting one batch
        // while the next is parsed. Same checks, same messages, still all or nothing.
        if !dryRun, idempotencyKey == nil, files.count > JobRepository.defaultSubmitBatchSize {
            try await database.withPool(migrations: migrations) { pool in try await submitStreamed(pool: pool) }
            return
        }
        // 1. Every file on its own: syntax, types, ranges. No database needed for this part; the
        // files are parsed in parallel, and their results and problems stay in argument order.
        let (parsed, diagnostics) = await JobSpecParser.parseSplitting(files.map(JobSpecSource.file))
        if !diagnostics.isEmpty { throw SpecProblems(diagnostics: diagnostics) }

        // 2. Against the registered targets.
        try await database.withPool(migrations: migrations) { pool in try await submit(parsed, pool: pool) }
    }

    private func submit(_ parsed: [(file: String, spec: ParsedJobSpec)], pool: PostgresPool) async throws {
        let targets = try await TargetRepository(pool: pool).definitions()
        let checked = await SubmissionPlan.make(for: parsed, registered: targets)
        if !checked.problems.isEmpty { throw SpecProblems(diagnostics: checked.problems) }
        var plans = checked.plans
        // Relative workdirs run from where the job was submitted (as with SkyPilot's workdir).
        let here = FileManager.default.currentDirectoryPath
        for index in plans.indices { plans[index].job.workdirBase = here }

        if dryRun {
            try await printDryRun(plans, registered: targets, pool: pool)
            return
        }

        // 3. One batch, one round trip: all the files are stored, or none is.
        if let idempotencyKey {
            for index in plans.indices { plans[index].job.submitKey = files.count == 1 ? idempotencyKey : "\(idempotencyKey)-\(index + 1)" }
        }
        let records = try await JobRepository(pool: pool).submit(plans.map(\.job))
        try printSubmitted(plans, records)
    }

    private func submitStreamed(pool: PostgresPool) async throws {
        let submission = StreamedSubmission(
            repository: JobRepository(pool: pool), registered: try await TargetRepository(pool: pool).definitions(),
            workdirBase: FileManager.default.currentDirectoryPath)
        switch try await submission.submit(files.map(JobSpecSource.file)) {
        case .problems(let diagnostics): throw SpecProblems(diagnostics: diagnostics)
        case .stored(let plans, let records): try printSubmitted(plans, records)
        }
    }

    private func printSubmitted(_ plans: [SubmissionPlan], _ records: [JobRecord]) throws {
        if json {
            try printJSON(records.map(JobSummaryJSON.init), convertKeys: false)
        } else {
            let rows = zip(plans, records).map { plan, record in [record.id.uuidString.lowercased(), record.name, record.state.rawValue, plan.file] }
            print(formatTable([["ID", "NAME", "STATE", "FILE"]] + rows))
        }
    }

    private func printDryRun(_ plans: [SubmissionPlan], registered: [TargetDefinition], pool: PostgresPool) async throws {
        var decisions: [PlacementDecision] = []
        for plan in plans {
            do {
                decisions.append(try await PlacementPreview.decide(plan.spec, registered: registered, pool: pool, catalogPath: CatalogFile.locate()) {
                    PlacementPreview.executorKinds.contains($0.kind)
                })
            } catch let error as CatalogError {
                throw CommandFailure(message: error.description, exitCode: 2)
            }
        }
        if json {
            try printJSON(zip(plans, decisions).map { plan, decision in
                DryRunJSON(file: plan.file, specHash: plan.job.specHash, spec: CanonicalJSON.value(of: plan.spec),
                           candidates: plan.candidates.fitting.map(\.name),
                           rejected: plan.candidates.rejected.map { .init(target: $0.name, reason: $0.reason) }, placement: decision)
            }, convertKeys: false)
            return
        }
        for (plan, decision) in zip(plans, decisions) {
            print("\(plan.file): valid; nothing submitted (--dry-run)")
            print("spec_hash: \(plan.job.specHash)")
            print("normalised spec:")
            print(plan.job.specJSON)
            print("candidate targets: \(plan.candidates.fitting.map(\.name).joined(separator: ", "))")
            for rejected in plan.candidates.rejected { print("  not \(rejected.name): \(rejected.reason)") }
            print("placement now: \(decision.chosen.map { "\($0.target) — " } ?? "nowhere — ")\(decision.why)")
            print(PlacementTable.render(decision))
        }
    }
}

/// A placement decision as a table: every candidate with its cost terms, or why it was left out.
enum PlacementTable {
    static func render(_ decision: PlacementDecision) -> String {
        let rows = decision.candidates.sorted { ($0.score ?? .infinity, $0.target) < ($1.score ?? .infinity, $1.target) }.map { candidate -> [String] in
            let mark = candidate.target == decision.chosen?.target ? "*" : " "
            guard candidate.excluded == nil else { return [mark, candidate.target, "-", "-", "-", "-", "-", "excluded: " + (candidate.excluded ?? "")] }
            func money(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "-" }
            return [mark, candidate.target, (candidate.offer ?? "-") + (candidate.spot ? " (spot)" : ""), money(candidate.hourlyPrice),
                    money(candidate.computeCost), candidate.missingBytes.map { byteText($0) } ?? "-",
                    money((candidate.egressCost ?? 0) + (candidate.restorePenalty ?? 0)), money(candidate.score)]
        }
        let header = ["", "TARGET", "OFFER", "$/H", String(format: "COMPUTE (%.1fh)", decision.expectedHours), "TO MOVE", "MOVE+RESTORE $", "SCORE $"]
        return formatTable([header] + rows)
    }
}

/// Validation problems from one or more files; printed like a compiler's, exit code 2.
struct SpecProblems: Error, CustomStringConvertible {
    var diagnostics: [SpecDiagnostic]
    var action = "nothing was submitted"

    var description: String {
        let count = diagnostics.count
        let summary = "\(count) problem\(count == 1 ? "" : "s") found; \(action)"
        return (diagnostics.map(\.description) + [summary]).joined(separator: "\n")
    }
}

struct DryRunJSON: Encodable {
    var file: String
    var specHash: String
    var spec: JSONValue
    var candidates: [String]
    var rejected: [Rejection]
    var placement: PlacementDecision
    struct Rejection: Encodable { var target: String; var reason: String }
    enum CodingKeys: String, CodingKey { case file, spec, candidates, rejected, placement; case specHash = "spec_hash" }
}
