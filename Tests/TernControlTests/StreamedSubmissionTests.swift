import Foundation
@testable import TernControl
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// `StreamedSubmission` (what `tern submit` runs for many files): parsing overlapped with
/// inserting, against the real PostgreSQL, still one transaction and every problem reported.
@Suite struct StreamedSubmissionTests {
    static let targets = """
        targets:
          local-a:
            kind: local
            storage: file:///tmp/tern-streamed-test
            max_nodes: 2
        """

    static func spec(_ index: Int, nodes: Int = 1, target: String? = nil) -> JobSpecSource {
        var text = """
            name: stream-\(index)
            nodes: \(nodes)
            run: echo \(index)
            labels: {i: "\(index)"}

            """
        if let target { text += "placement: {targets: [\(target)]}\n" }
        return .text(text, file: "spec-\(index).yaml")
    }

    static func setUp(batch: Int) async throws -> (PostgresPool, StreamedSubmission) {
        let pool = try await ControlDatabase.migratedPool()
        let definitions = try TargetsFileParser.parse(targets, file: "targets.yaml").get()
        try await TargetRepository(pool: pool).apply(definitions)
        let submission = StreamedSubmission(
            repository: JobRepository(pool: pool, submitBatchSize: batch), registered: try await TargetRepository(pool: pool).definitions(),
            workdirBase: "/srv/submitted-from")
        return (pool, submission)
    }

    @Test func manyBatchesAreStoredInOrderInOneTransaction() async throws {
        let (pool, submission) = try await Self.setUp(batch: 100)
        defer { Task { await pool.close() } }
        let sources = (0..<1050).map { Self.spec($0) }
        guard case .stored(let plans, let records) = try await submission.submit(sources) else {
            Issue.record("valid specs were not stored")
            return
        }
        #expect(records.map(\.name) == (0..<1050).map { "stream-\($0)" })
        #expect(plans.map(\.file) == (0..<1050).map { "spec-\($0).yaml" })
        #expect(zip(plans, records).allSatisfy { $0.job.specHash == $1.specHash && $1.state == .pending })
        // One transaction: one database time for every batch.
        #expect(Set(records.map(\.createdAt)).count == 1)
        #expect(try await pool.query("SELECT count(*) FROM jobs WHERE workdir_base = '/srv/submitted-from'").scalar(Int.self) == 1050)
        #expect(try await pool.query("SELECT count(*) FROM job_events WHERE kind = 'submitted'").scalar(Int.self) == 1050)
        // What was stored is the spec's canonical JSON and hash.
        let stored = try await pool.query("SELECT spec::text AS spec, spec_hash FROM jobs WHERE name = 'stream-777'")
        let spec = try CanonicalJSON.decode(JobSpec.self, from: try stored[0].decode(String.self, column: "spec"))
        #expect(spec.specHash == (try stored[0].decode(String.self, column: "spec_hash")))
        #expect(spec.run == "echo 777")
    }

    @Test func aProblemInAnyBatchStoresNothingAndEveryProblemIsReported() async throws {
        let (pool, submission) = try await Self.setUp(batch: 100)
        defer { Task { await pool.close() } }
        var sources = (0..<450).map { Self.spec($0) }
        // Broken files in the first, a middle and the last batch (after earlier batches were inserted).
        for index in [5, 250, 449] { sources[index] = .text("name: broken-\(index)\nrun: [unclosed\n", file: "spec-\(index).yaml") }
        guard case .problems(let problems) = try await submission.submit(sources) else {
            Issue.record("a submission with broken files was stored")
            return
        }
        #expect(problems.map(\.location.file) == ["spec-5.yaml", "spec-250.yaml", "spec-449.yaml"])
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 0)
        #expect(try await pool.query("SELECT count(*) FROM job_events").scalar(Int.self) == 0)
    }

    @Test func targetProblemsAreReportedWhenTheFilesThemselvesAreFine() async throws {
        let (pool, submission) = try await Self.setUp(batch: 100)
        defer { Task { await pool.close() } }
        var sources = (0..<300).map { Self.spec($0) }
        sources[150] = Self.spec(150, target: "nowhere")
        sources[299] = Self.spec(299, nodes: 3)  // local-a has 2 nodes
        guard case .problems(let problems) = try await submission.submit(sources) else {
            Issue.record("a submission naming an unknown target was stored")
            return
        }
        #expect(problems.map(\.location.file) == ["spec-150.yaml", "spec-299.yaml"])
        #expect(problems[0].message.contains("nowhere"))
        #expect(problems[1].message.contains("no registered target can run this job"))
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 0)
    }

    @Test func aFailingBatchRollsBackTheBatchesBeforeIt() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool, submitBatchSize: 100)
        var batches = [(0..<100).map { sampleJob("ok-\($0)", number: $0) }, (0..<100).map { sampleJob("ok2-\($0)", number: 100 + $0) }]
        batches[1][40].specHash = "not-a-hash"  // refused by the table's check
        var handedOver = 0
        await #expect(throws: PostgresError.self) {
            _ = try await jobs.submit(streaming: {
                guard handedOver < batches.count else { return nil }
                handedOver += 1
                return batches[handedOver - 1]
            })
        }
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 0)
        // Submit keys need every key up front: refused, nothing stored.
        await #expect(throws: JobRepositoryError.self) {
            var sent = false
            _ = try await jobs.submit(streaming: {
                if sent { return nil }
                sent = true
                return [sampleJob("keyed", submitKey: "k")]
            })
        }
        #expect(try await pool.query("SELECT count(*) FROM jobs").scalar(Int.self) == 0)
        // The connection went back to the pool clean: a plain submission works.
        #expect(try await jobs.submit([sampleJob("after")]).count == 1)
    }
}
