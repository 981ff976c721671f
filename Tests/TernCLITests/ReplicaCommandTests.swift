import Foundation
import TernTestSupport
import Testing

/// Replication as a user drives it, each step a run of the `tern` program against a real
/// PostgreSQL: seal → push to two targets → status → verify --deep → corrupt → verify (demoted) →
/// push (repaired) → pull → gc.
@Suite struct ReplicaCommandTests {
    static let repository = DatabaseCommandTests.repository

    static func object(_ outcome: TernBinary.Outcome) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any],
                     "stdout: \(outcome.stdout)\nstderr: \(outcome.stderr)")
    }

    @Test func helpForEveryReplicaCommand() async throws {
        for command in [["checkpoint", "push"], ["checkpoint", "pull"], ["checkpoint", "status"], ["gc"]] {
            let help = try await TernBinary.run(command + ["--help"])
            #expect(help.status == 0, "tern \(command.joined(separator: " ")) --help")
            #expect(help.stdout.contains("USAGE"))
        }
    }

    @Test func pushStatusVerifyRepairPullAndCollect() async throws {
        let database = ["--database-url", try await TestDatabase.fresh()]
        let scratch = try CheckpointCommandTests.Scratch()
        let storeA = scratch.path + "/store-a", storeB = scratch.path + "/store-b"
        // The demo's two target names (jobspecs/demo.yaml asks for them), with stores in this test's scratch.
        let targets = scratch.path + "/targets.yaml"
        try """
            targets:
              local-a: {kind: local, storage: "file://\(storeA)", max_nodes: 2, settings: {slots: 2}}
              local-b: {kind: local, storage: "file://\(storeB)", max_nodes: 2, settings: {slots: 2}}
            """.write(toFile: targets, atomically: true, encoding: .utf8)
        let apply = try await TernBinary.run(["targets", "apply", targets] + database)
        #expect(apply.status == 0, "\(apply.stderr)")
        let submit = try await TernBinary.run(["submit", Self.repository + "/jobspecs/demo.yaml", "--json"] + database)
        #expect(submit.status == 0, "\(submit.stderr)")
        let job = try #require((try JSONSerialization.jsonObject(with: Data(submit.stdout.utf8)) as? [[String: Any]])?.first?["id"] as? String)

        let base = CheckpointCommandTests.bytes(2_000_000, seed: 1)
        let step100 = try scratch.step("step_100", ["base.bin": base, "adapter.bin": CheckpointCommandTests.bytes(30_000, seed: 2), "TERN_COMPLETE": Data()])
        let step200 = try scratch.step("step_200", ["base.bin": base, "adapter.bin": CheckpointCommandTests.bytes(30_000, seed: 3), "TERN_COMPLETE": Data()])
        var ids: [String] = []
        for (directory, step) in [(step100, "100"), (step200, "200")] {
            let seal = try await TernBinary.run(["checkpoint", "seal", directory, "--job", job, "--step", step, "--json"] + database)
            #expect(seal.status == 0, "\(seal.stderr)")
            ids.append(try #require(try Self.object(seal)["id"] as? String))
        }

        // Push step 100, then step 200: the frozen base is not sent again.
        let first = try await TernBinary.run(["checkpoint", "push", ids[0], "--from", step100, "--to", "local-a", "--json"] + database)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try Self.object(first)["bytes_sent"] as? Int == 2_030_000)
        let second = try await TernBinary.run(["checkpoint", "push", ids[1], "--from", step200, "--to", "local-a", "--json"] + database)
        #expect(try Self.object(second)["bytes_sent"] as? Int == 30_000)
        #expect(try Self.object(second)["target"] as? String == "local-a")
        let toB = try await TernBinary.run(["checkpoint", "push", ids[1], "--from", step200, "--to", "local-b"] + database)
        #expect(toB.status == 0, "\(toB.stderr)")
        #expect(toB.stdout.contains("committed:"))

        let status = try await TernBinary.run(["checkpoint", "status", job] + database)
        #expect(status.status == 0, "\(status.stderr)")
        let lines = status.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.first == ["STEP", "CHECKPOINT", "LOCAL-A", "LOCAL-B"])
        #expect(lines.dropFirst().first == ["200", String(ids[1].prefix(12)), "committed/L1", "committed/L1"])
        #expect(lines.dropFirst(2).first == ["100", String(ids[0].prefix(12)), "committed/L1", "-"])

        let deep = try await TernBinary.run(["checkpoint", "verify", ids[1], "--on", "local-b", "--deep"] + database)
        #expect(deep.status == 0, "\(deep.stdout)\(deep.stderr)")
        #expect(deep.stdout.hasPrefix("OK:"))

        // Damage the adapter's object on store B: deep verification names it and demotes the copy.
        let adapterBlob = try #require(try FileManager.default.contentsOfDirectory(atPath: storeB + "/blobs").first { name in
            (try? FileManager.default.attributesOfItem(atPath: storeB + "/blobs/" + name)[.size] as? Int) == 30_000
        })
        let handle = try #require(FileHandle(forUpdatingAtPath: storeB + "/blobs/" + adapterBlob))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([0xFF, 0x00, 0xFF]))
        try handle.close()
        let broken = try await TernBinary.run(["checkpoint", "verify", ids[1], "--on", "local-b", "--deep"] + database)
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("adapter.bin"))
        #expect(broken.stdout.contains("bytes 0..<30000"))
        #expect(broken.stdout.contains("demoted"))
        let demoted = try await TernBinary.run(["checkpoint", "status", job, "--json"] + database)
        #expect(demoted.stdout.contains("\"corrupt\""))
        let refused = try await TernBinary.run(["checkpoint", "pull", ids[1], "--from", "local-b", scratch.path + "/from-b"] + database)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("not committed"))

        // Pushing again repairs it.
        let repair = try await TernBinary.run(["checkpoint", "push", ids[1], "--from", step200, "--to", "local-b", "--deep", "--json"] + database)
        #expect(repair.status == 0, "\(repair.stderr)")
        #expect(try Self.object(repair)["bytes_sent"] as? Int == 30_000)

        let pull = try await TernBinary.run(["checkpoint", "pull", String(ids[1].prefix(10)), "--from", "local-b", scratch.path + "/restored"] + database)
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(FileManager.default.contents(atPath: scratch.path + "/restored/base.bin") == base)

        // Keep the newest: step 100's copy goes, but not the base its successor shares.
        let gc = try await TernBinary.run(["gc", job, "--keep", "1", "--json"] + database)
        #expect(gc.status == 0, "\(gc.stderr)")
        let collected = try #require(try Self.object(gc)["collected"] as? [[String: Any]])
        #expect(collected.count == 1)
        #expect(collected.first?["bytes_freed"] as? Int == 30_000)
        #expect(!FileManager.default.fileExists(atPath: "\(storeA)/checkpoints/\(ids[0])/_TERN_COMMITTED"))
        #expect(FileManager.default.fileExists(atPath: "\(storeA)/checkpoints/\(ids[1])/_TERN_COMMITTED"))
        let verifyKept = try await TernBinary.run(["checkpoint", "verify", ids[1], "--on", "local-a", "--deep"] + database)
        #expect(verifyKept.status == 0, "\(verifyKept.stdout)\(verifyKept.stderr)")
    }

    @Test func aPushKilledInsideALargeUploadFinishesWithoutResendingWhatWasSent() async throws {
        let database = ["--database-url", try await TestDatabase.fresh()]
        let scratch = try CheckpointCommandTests.Scratch()
        let store = "file://" + scratch.path + "/store"
        let big = CheckpointCommandTests.bytes(3_500_000, seed: 7)
        let step = try scratch.step("step_5", ["big.bin": big, "small.bin": CheckpointCommandTests.bytes(1000, seed: 8), "TERN_COMPLETE": Data()])
        // SIGKILL after the second 1 MiB part of big.bin is journaled: no cleanup, as in a real crash.
        let killed = try await TernBinary.run(["checkpoint", "push", step, "--to", store, "--part-size", "1", "--parallel", "1"] + database,
                                              environment: ["TERN_CRASH_AT": "after-part:2"])
        #expect(killed.status == 128 + 9, "\(killed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/store/checkpoints"))

        let resumed = try await TernBinary.run(["checkpoint", "push", step, "--to", store, "--part-size", "1", "--json"] + database)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let report = try Self.object(resumed)
        // The two parts already sent are not sent again: 3,500,000 - 2 MiB of big.bin, plus small.bin.
        #expect(report["bytes_sent"] as? Int == 3_500_000 - 2 * 1_048_576 + 1000)
        let id = try #require(report["checkpoint_id"] as? String)
        let verify = try await TernBinary.run(["checkpoint", "verify", id, "--on", store, "--deep"] + database)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }
}
