import Foundation
import TernControl
import TernModel
import TernPostgres
import TernTestSupport
import Testing

@Suite struct TargetRepositoryTests {
    static let file = """
        targets:
          aws-us-east-1:
            kind: aws-batch
            region: us-east-1
            storage: s3://ckpt/tern
            accelerators: [H100:8, A100-80GB:8]
            max_nodes: 4
            spot: true
            settings:
              job_queue: gpu-queue
            labels: {cloud: aws}
          onprem-slurm:
            kind: slurm
            storage: file:///srv/tern
            max_nodes: 2
            settings:
              partition: gpu
        """

    /// Targets from a targets file, through the real parser.
    static func definitions(_ yaml: String = file) throws -> [TargetDefinition] {
        try TargetsFileParser.parse(yaml, file: "targets.yaml").get()
    }

    @Test func applyCreatesUpdatesAndLeavesUnchanged() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let targets = TargetRepository(pool: pool)
        let parsed = try Self.definitions()
        let aws = try #require(parsed.first { $0.name == "aws-us-east-1" })
        let slurm = try #require(parsed.first { $0.name == "onprem-slurm" })

        #expect(try await targets.apply([aws, slurm]) == ApplySummary(created: ["aws-us-east-1", "onprem-slurm"]))
        let firstList = try await targets.list()
        #expect(firstList.map(\.name) == ["aws-us-east-1", "onprem-slurm"])
        let stored = try #require(firstList.first)
        #expect(stored.kind == "aws-batch")
        #expect(stored.storageURL == "s3://ckpt/tern")
        #expect(stored.region == "us-east-1")
        #expect(stored.labels == ["cloud": "aws"])
        #expect(stored.configHash == aws.configHash)
        #expect(firstList[1].region == nil)
        #expect(firstList[1].labels == [:])
        let settings = try JSONSerialization.jsonObject(with: Data(stored.settingsJSON.utf8)) as? [String: Any]
        #expect(settings?["job_queue"] as? String == "gpu-queue")
        // The whole definition comes back as it was applied.
        #expect(try await targets.definitions() == [aws, slurm])

        // The same definitions again: nothing is written.
        #expect(try await targets.apply([slurm, aws]) == ApplySummary(unchanged: ["onprem-slurm", "aws-us-east-1"]))
        #expect(try await targets.list() == firstList)

        // One changed, one new, one unchanged.
        var changed = slurm
        changed.settings["partition"] = .string("h100")
        changed.maxNodes = 8
        #expect(changed.configHash != slurm.configHash)
        let local = try #require(try Self.definitions("""
            targets:
              laptop:
                kind: local
                storage: file:///tmp/tern
            """).first)
        #expect(try await targets.apply([changed, local, aws]) == ApplySummary(created: ["laptop"], updated: ["onprem-slurm"], unchanged: ["aws-us-east-1"]))
        let secondList = try await targets.list()
        #expect(secondList.map(\.name) == ["aws-us-east-1", "laptop", "onprem-slurm"])
        let updated = try #require(secondList.last)
        #expect(updated.configHash == changed.configHash)
        #expect(updated.settingsJSON.contains("h100"))
        #expect(updated.createdAt == firstList[1].createdAt)
        #expect(updated.updatedAt > firstList[1].updatedAt)
        #expect(secondList.first == firstList.first)
        #expect(try await targets.definitions() == [aws, local, changed])

        #expect(try await targets.existing(names: ["laptop", "nowhere", "aws-us-east-1"]) == ["laptop", "aws-us-east-1"])
        #expect(try await targets.existing(names: []).isEmpty)
        #expect(try await targets.apply([]) == ApplySummary())
    }

    @Test func applyIsAllOrNothing() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let targets = TargetRepository(pool: pool)
        let parsed = try Self.definitions()
        let good = parsed[0]
        await #expect(throws: TargetApplyError.duplicateName(good.name)) { try await targets.apply([good, good]) }
        // A row the schema refuses fails the statement, and the good target in it is not stored either.
        var bad = parsed[1]
        bad.storage = ""
        await #expect(throws: PostgresError.self) { try await targets.apply([good, bad]) }
        #expect(try await targets.list().isEmpty)
        // The schema knows the executor kinds.
        await #expect(throws: PostgresError.self) {
            try await pool.query("""
                INSERT INTO targets (name, kind, storage_url, config_hash, definition)
                VALUES ('mainframe', 'zos', 'file:///x', 'h', '{}')
                """)
        }
    }

    @Test func concurrentAppliesAgree() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 8)
        defer { Task { await pool.close() } }
        let targets = TargetRepository(pool: pool)
        let yaml = "targets:\n" + (0..<20).map { "  t\($0):\n    kind: local\n    storage: file:///tmp/t\($0)\n" }.joined()
        let definitions = try Self.definitions(yaml)
        #expect(definitions.count == 20)
        let summaries = try await withThrowingTaskGroup(of: ApplySummary.self) { group in
            for round in 0..<8 {
                // Different orders, so a deadlock would show if rows were locked in input order.
                let order = round % 2 == 0 ? definitions : definitions.reversed()
                group.addTask { try await targets.apply(order) }
            }
            return try await group.reduce(into: [ApplySummary]()) { $0.append($1) }
        }
        // Each target was created by exactly one of the applies; the others saw it unchanged.
        for definition in definitions {
            #expect(summaries.filter { $0.created.contains(definition.name) }.count == 1)
            #expect(summaries.filter { $0.unchanged.contains(definition.name) }.count == 7)
        }
        #expect(try await targets.list().count == 20)
    }
}
