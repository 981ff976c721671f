import Foundation
import TernTestSupport
import Testing

/// Checkpoints as a user drives them: commit → seal → show → verify → corrupt → verify → diff,
/// each a separate run of the `tern` program, against a real PostgreSQL database where one is used.
@Suite struct CheckpointCommandTests {
    static let repository = DatabaseCommandTests.repository
    /// A server nobody listens on: commands that must not need a database are pointed at it.
    static let nowhere = ["--database-url", "postgres://tern@127.0.0.1:1/none?connect_timeout=2"]

    static func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }
    static func object(_ outcome: TernBinary.Outcome) throws -> [String: Any] {
        try #require(try json(outcome.stdout) as? [String: Any], "stdout: \(outcome.stdout)\nstderr: \(outcome.stderr)")
    }

    /// Deterministic bytes that differ by `seed`.
    static func bytes(_ count: Int, seed: UInt8) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed) &* 101 &+ ($0 >> 9)) })
    }

    /// A scratch directory for one test, removed afterwards.
    final class Scratch {
        let path = TestDatabase.scratchDirectory("ckcli")
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        /// Writes files under `path/directory`, creating it.
        @discardableResult
        func step(_ directory: String, _ files: [String: Data]) throws -> String {
            let root = path + "/" + directory
            for (name, data) in files {
                let full = root + "/" + name
                try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: full))
            }
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            return root
        }
    }

    @Test func helpForEveryCheckpointCommand() async throws {
        for command in [["checkpoint"], ["checkpoint", "seal"], ["checkpoint", "verify"], ["checkpoint", "show"], ["checkpoint", "diff"],
                        ["checkpoint", "commit"], ["checkpoints"]] {
            let help = try await TernBinary.run(command + ["--help"])
            #expect(help.status == 0, "tern \(command.joined(separator: " ")) --help")
            #expect(help.stdout.contains("USAGE"))
        }
        #expect(try await TernBinary.run(["--help"]).stdout.contains("checkpoints"))
    }

    @Test func commitSealShowVerifyCorruptAndDiff() async throws {
        let url = try await TestDatabase.fresh()
        let database = ["--database-url", url]
        let scratch = try Scratch()
        let shard0 = Self.bytes(1_500_000, seed: 1), shard1 = Self.bytes(700_000, seed: 2)
        let first = try scratch.step("step_100", ["shard-0.bin": shard0, "nested/shard-1.bin": shard1])

        // Not complete yet: refused, naming the marker that is missing.
        let early = try await TernBinary.run(["checkpoint", "seal", first, "--format", "marker"] + database)
        #expect(early.status == 1)
        #expect(early.stderr.contains("no TERN_COMPLETE marker"), "\(early.stderr)")

        let commit = try await TernBinary.run(["checkpoint", "commit", first])
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(FileManager.default.fileExists(atPath: first + "/TERN_COMPLETE"))
        #expect(!FileManager.default.fileExists(atPath: first + "/.TERN_COMPLETE.tmp"))
        #expect(try await TernBinary.run(["checkpoint", "commit", first]).stdout.contains("already committed"))

        let seal = try await TernBinary.run(["checkpoint", "seal", first, "--json"] + database)
        #expect(seal.status == 0, "\(seal.stderr)")
        let sealed = try Self.object(seal)
        let id = try #require(sealed["id"] as? String)
        #expect(id.count == 64)
        #expect(sealed["files"] as? Int == 3)
        #expect(sealed["bytes"] as? Int == 2_200_000)
        #expect(sealed["format"] as? String == "marker")
        #expect(sealed["recorded"] as? Bool == true)
        #expect(sealed["newly_stored"] as? Bool == true)
        // The same bytes again: the same id, nothing new stored.
        let again = try Self.object(try await TernBinary.run(["checkpoint", "seal", first, "--json"] + database))
        #expect(again["id"] as? String == id)
        #expect(again["newly_stored"] as? Bool == false)
        let human = try await TernBinary.run(["checkpoint", "seal", first] + database)
        #expect(human.stdout.contains(id) && human.stdout.contains("already stored") && human.stdout.contains("MB/s"), "\(human.stdout)")

        // show, by a prefix.
        let show = try await TernBinary.run(["checkpoint", "show", String(id.prefix(8))] + database)
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains(id) && show.stdout.contains("nested/shard-1.bin") && show.stdout.contains("marker"))
        let shown = try Self.object(try await TernBinary.run(["checkpoint", "show", id, "--json"] + database))
        #expect(shown["files"] as? Int == 3)
        #expect(shown["format"] as? String == "marker")
        let manifest = try #require(shown["manifest"] as? [String: Any])
        #expect(manifest["format"] as? String == "tern-manifest/v1")
        #expect((manifest["files"] as? [[String: Any]])?.map { $0["path"] as? String } == ["TERN_COMPLETE", "nested/shard-1.bin", "shard-0.bin"])

        // verify: identical, then one byte changed.
        let ok = try await TernBinary.run(["checkpoint", "verify", first, "--manifest", String(id.prefix(12))] + database)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("OK"))
        var damaged = shard1
        damaged[123_456] ^= 0x01
        try damaged.write(to: URL(fileURLWithPath: first + "/nested/shard-1.bin"))
        let bad = try await TernBinary.run(["checkpoint", "verify", first, "--manifest", id] + database)
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("DIFFERENT"))
        #expect(bad.stdout.contains("changed  nested/shard-1.bin: bytes 0..<700000"), "\(bad.stdout)")
        let badJSON = try Self.object(try await TernBinary.run(["checkpoint", "verify", first, "--manifest", id, "--json"] + database))
        #expect(badJSON["identical"] as? Bool == false)
        let changed = try #require((badJSON["changed"] as? [[String: Any]])?.first)
        #expect(changed["path"] as? String == "nested/shard-1.bin")
        #expect((changed["ranges"] as? [[String: Int]]) == [["start": 0, "end": 700_000]])
        try shard1.write(to: URL(fileURLWithPath: first + "/nested/shard-1.bin"))

        // A second checkpoint: shard-0 unchanged, shard-1 changed, shard-2 added.
        let second = try scratch.step("step_200", ["shard-0.bin": shard0, "nested/shard-1.bin": Self.bytes(700_000, seed: 3),
                                                   "shard-2.bin": Self.bytes(10_000, seed: 4)])
        #expect(try await TernBinary.run(["checkpoint", "commit", second]).status == 0)
        let secondID = try #require(try Self.object(try await TernBinary.run(["checkpoint", "seal", second, "--json"] + database))["id"] as? String)
        let diff = try await TernBinary.run(["checkpoint", "diff", id, String(secondID.prefix(10)), "--json"] + database)
        #expect(diff.status == 0, "\(diff.stderr)")
        let compared = try Self.object(diff)
        #expect(compared["from"] as? String == id && compared["to"] as? String == secondID)
        #expect(compared["identical"] as? [String] == ["TERN_COMPLETE", "shard-0.bin"])
        #expect(compared["changed"] as? [String] == ["nested/shard-1.bin"])
        #expect(compared["added"] as? [String] == ["shard-2.bin"])
        #expect(compared["removed"] as? [String] == [])
        #expect(compared["bytes_already_present"] as? Int == 1_500_000)
        #expect(compared["bytes_to_move"] as? Int == 710_000)
        let diffText = try await TernBinary.run(["checkpoint", "diff", id, secondID] + database)
        #expect(diffText.stdout.contains("2 identical, 1 changed, 1 added, 0 removed"), "\(diffText.stdout)")
        #expect(diffText.stdout.contains("bytes already present: 1.4 MiB (1500000)"))

        // Manifest files instead of the database: seal --no-record --output needs no server at all.
        let output = scratch.path + "/manifests"
        let offline = try await TernBinary.run(["checkpoint", "seal", first, "--no-record", "--output", output, "--json"] + Self.nowhere)
        #expect(offline.status == 0, "\(offline.stderr)")
        let offlineSealed = try Self.object(offline)
        #expect(offlineSealed["id"] as? String == id)
        #expect(offlineSealed["recorded"] as? Bool == false)
        #expect(offlineSealed["manifest_path"] as? String == "\(output)/\(id).json")
        #expect(FileManager.default.fileExists(atPath: "\(output)/\(id).chunks"))
        #expect(try await TernBinary.run(["checkpoint", "seal", second, "--no-record", "--output", output] + Self.nowhere).status == 0)
        let fileDiff = try Self.object(try await TernBinary.run(
            ["checkpoint", "diff", "\(output)/\(id).json", "\(output)/\(secondID).json", "--json"] + Self.nowhere))
        #expect(fileDiff["bytes_already_present"] as? Int == 1_500_000)
        try damaged.write(to: URL(fileURLWithPath: first + "/nested/shard-1.bin"))
        let offlineVerify = try await TernBinary.run(["checkpoint", "verify", first, "--manifest", "\(output)/\(id).json"] + Self.nowhere)
        #expect(offlineVerify.status == 1)
        #expect(offlineVerify.stdout.contains("changed  nested/shard-1.bin: bytes 0..<700000"), "\(offlineVerify.stdout)\(offlineVerify.stderr)")
        let offlineShow = try await TernBinary.run(["checkpoint", "show", "\(output)/\(secondID).json"] + Self.nowhere)
        #expect(offlineShow.status == 0 && offlineShow.stdout.contains("shard-2.bin"), "\(offlineShow.stderr)")
        // Without --no-record the same command does need the server, and says so.
        let needsServer = try await TernBinary.run(["checkpoint", "seal", second] + Self.nowhere)
        #expect(needsServer.status == 1)
        #expect(needsServer.stderr.contains("could not connect"), "\(needsServer.stderr)")
    }

    @Test func aJobsCheckpointsAreListedByStep() async throws {
        let url = try await TestDatabase.fresh()
        let database = ["--database-url", url]
        _ = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/demo.yaml"] + database)
        let submit = try await TernBinary.run(["submit", Self.repository + "/jobspecs/demo.yaml", "--json"] + database)
        #expect(submit.status == 0, "\(submit.stderr)")
        let jobID = try #require((try Self.json(submit.stdout) as? [[String: Any]])?.first?["id"] as? String)
        let scratch = try Scratch()

        let empty = try await TernBinary.run(["checkpoints", "demo"] + database)
        #expect(empty.status == 0 && empty.stdout.contains("no checkpoints"), "\(empty.stderr)")

        // The step from the directory's name, or given.
        let a = try scratch.step("step_000100", ["w.bin": Self.bytes(50_000, seed: 1), "TERN_COMPLETE": Data()])
        let b = try scratch.step("latest-copy", ["w.bin": Self.bytes(50_000, seed: 2), "TERN_COMPLETE": Data()])
        let sealA = try Self.object(try await TernBinary.run(["checkpoint", "seal", a, "--job", "demo", "--json"] + database))
        #expect(sealA["step"] as? Int == 100 && sealA["job_id"] as? String == jobID)
        let refused = try await TernBinary.run(["checkpoint", "seal", b, "--job", "demo"] + database)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("give --step"), "\(refused.stderr)")
        let sealB = try Self.object(try await TernBinary.run(["checkpoint", "seal", b, "--job", String(jobID.prefix(8)), "--step", "200", "--json"] + database))
        #expect(sealB["step"] as? Int == 200)

        let listed = try await TernBinary.run(["checkpoints", "demo", "--json"] + database)
        #expect(listed.status == 0, "\(listed.stderr)")
        let rows = try #require(try Self.json(listed.stdout) as? [[String: Any]])
        #expect(rows.map { $0["step"] as? Int } == [200, 100])
        #expect(rows.map { $0["id"] as? String } == [sealB["id"] as? String, sealA["id"] as? String])
        #expect(rows.allSatisfy { $0["files"] as? Int == 2 && $0["bytes"] as? Int == 50_000 && $0["format"] as? String == "marker" })
        let table = try await TernBinary.run(["checkpoints", jobID] + database)
        #expect(table.stdout.contains("STEP") && table.stdout.contains(String((sealA["id"] as? String ?? "").prefix(12))), "\(table.stdout)")
        let shown = try await TernBinary.run(["checkpoint", "show", sealA["id"] as? String ?? ""] + database)
        #expect(shown.stdout.contains("demo-trainer, step 100"), "\(shown.stdout)")
        #expect(try await TernBinary.run(["events", "demo"] + database).stdout.contains("checkpoint_recorded"))

        let unknownJob = try await TernBinary.run(["checkpoint", "seal", a, "--job", "nothing-like-this"] + database)
        #expect(unknownJob.status == 1)
        #expect(unknownJob.stderr.contains("no job matches"))
    }

    @Test func refusalsAreClear() async throws {
        let scratch = try Scratch()
        let incomplete = try scratch.step("step_5", ["w.bin": Self.bytes(1000, seed: 1)])
        let missing = try await TernBinary.run(["checkpoint", "seal", incomplete, "--no-record"] + Self.nowhere)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("not a complete checkpoint") && missing.stderr.contains("TERN_COMPLETE"), "\(missing.stderr)")
        let dcp = try await TernBinary.run(["checkpoint", "seal", incomplete, "--format", "torch-dcp", "--no-record"])
        #expect(dcp.status == 1)
        #expect(dcp.stderr.contains(".metadata"), "\(dcp.stderr)")

        try Data().write(to: URL(fileURLWithPath: incomplete + "/TERN_COMPLETE"))
        try FileManager.default.createSymbolicLink(atPath: incomplete + "/alias.bin", withDestinationPath: "w.bin")
        let link = try await TernBinary.run(["checkpoint", "seal", incomplete, "--no-record"])
        #expect(link.status == 1)
        #expect(link.stderr.contains("alias.bin") && link.stderr.contains("symbolic link"), "\(link.stderr)")
        try FileManager.default.removeItem(atPath: incomplete + "/TERN_COMPLETE")
        let commitLink = try await TernBinary.run(["checkpoint", "commit", incomplete])
        #expect(commitLink.status == 1)
        #expect(commitLink.stderr.contains("alias.bin"), "\(commitLink.stderr)")
        #expect(!FileManager.default.fileExists(atPath: incomplete + "/TERN_COMPLETE"))

        let usage = try await TernBinary.run(["checkpoint", "seal", incomplete, "--step", "3"])
        #expect(usage.status == 2)
        let both = try await TernBinary.run(["checkpoint", "seal", incomplete, "--no-record", "--job", "x"])
        #expect(both.status == 2)
        let format = try await TernBinary.run(["checkpoint", "seal", incomplete, "--format", "safetensors"])
        #expect(format.status == 2 && format.stderr.contains("unknown format"))
        let notAnID = try await TernBinary.run(["checkpoint", "verify", incomplete, "--manifest", "zz"] + Self.nowhere)
        #expect(notAnID.status == 2 && notAnID.stderr.contains("neither a manifest file nor a checkpoint id"), "\(notAnID.stderr)")
        let noFile = try await TernBinary.run(["checkpoint", "show", scratch.path + "/absent.json"] + Self.nowhere)
        #expect(noFile.status == 1 && noFile.stderr.contains("no such manifest file"), "\(noFile.stderr)")

        let url = try await TestDatabase.fresh()
        let unknown = try await TernBinary.run(["checkpoint", "show", "abcdef12", "--database-url", url])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no stored checkpoint"), "\(unknown.stderr)")
    }
}
