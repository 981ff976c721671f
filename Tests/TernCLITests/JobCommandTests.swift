import Foundation
import TernTestSupport
import Testing

/// The job lifecycle as a user drives it: targets apply → submit → jobs → show → cancel → events,
/// each a separate run of the `tern` program against a real PostgreSQL database.
@Suite struct JobCommandTests {
    static let repository = DatabaseCommandTests.repository

    static func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test func helpForEveryJobCommand() async throws {
        for command in [["submit"], ["jobs"], ["show"], ["events"], ["cancel"], ["targets", "apply"], ["targets", "list"]] {
            let help = try await TernBinary.run(command + ["--help"])
            #expect(help.status == 0, "tern \(command.joined(separator: " ")) --help")
            #expect(help.stdout.contains("USAGE"))
        }
    }

    @Test func submitListShowCancelEvents() async throws {
        let url = try await TestDatabase.fresh()
        let database = ["--database-url", url]
        let apply = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/example.yaml", Self.repository + "/targets/demo.yaml", "--json"] + database)
        #expect(apply.status == 0, "\(apply.stderr)")
        let applied = try Self.json(apply.stdout) as? [String: Any]
        #expect((applied?["created"] as? [String])?.count == 6)
        // Applying the same files again changes nothing.
        let again = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/example.yaml", "--json"] + database)
        #expect((try Self.json(again.stdout) as? [String: Any])?["unchanged"] as? [String] == ["aws-us-east-1", "gcp-us-central1", "azure-eastus", "onprem-slurm"])
        let targets = try await TernBinary.run(["targets", "list"] + database)
        #expect(targets.stdout.contains("aws-us-east-1") && targets.stdout.contains("local-b"))

        let submit = try await TernBinary.run(["submit", Self.repository + "/jobspecs/demo.yaml", Self.repository + "/jobspecs/llama-lora.yaml", "--json"] + database)
        #expect(submit.status == 0, "\(submit.stderr)")
        let submitted = try Self.json(submit.stdout) as? [[String: Any]] ?? []
        #expect(submitted.map { $0["name"] as? String } == ["demo-trainer", "llama3-8b-lora"])
        #expect(submitted.allSatisfy { $0["state"] as? String == "pending" && ($0["spec_hash"] as? String)?.count == 64 })
        let demoID = try #require(submitted.first?["id"] as? String)

        let list = try await TernBinary.run(["jobs", "--json"] + database)
        #expect((try Self.json(list.stdout) as? [[String: Any]])?.count == 2)
        let filtered = try await TernBinary.run(["jobs", "--label", "purpose=demo", "--state", "pending"] + database)
        #expect(filtered.stdout.contains("demo-trainer") && !filtered.stdout.contains("llama3"))
        #expect(filtered.stdout.contains("SUBMITTED") && filtered.stdout.contains(String(demoID.prefix(8))))

        // By name prefix and by id prefix.
        let show = try await TernBinary.run(["show", "demo", "--json"] + database)
        #expect(show.status == 0, "\(show.stderr)")
        let shown = try Self.json(show.stdout) as? [String: Any]
        #expect((shown?["job"] as? [String: Any])?["id"] as? String == demoID)
        #expect((shown?["spec"] as? [String: Any])?["name"] as? String == "demo-trainer")
        #expect(try await TernBinary.run(["show", String(demoID.prefix(6))] + database).stdout.contains("demo-trainer"))

        let cancel = try await TernBinary.run(["cancel", "demo"] + database)
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("pending → cancelled"))
        // A second cancel changes nothing and says why, with exit code 1.
        let twice = try await TernBinary.run(["cancel", "demo"] + database)
        #expect(twice.status == 1)
        #expect(twice.stdout.contains("not changed"))
        // A reference that matches no job: its entry still has every key, the unknown ones null.
        let nobody = try await TernBinary.run(["cancel", "no-such-job", "--json"] + database)
        let entry = try #require((try Self.json(nobody.stdout) as? [[String: Any]])?.first, "\(nobody.stdout) \(nobody.stderr)")
        #expect(entry["id"] is NSNull && entry["name"] is NSNull && entry["from"] is NSNull && entry["to"] is NSNull, "\(entry)")
        #expect(entry["changed"] as? Bool == false)

        let events = try await TernBinary.run(["events", demoID, "--json"] + database)
        let kinds = (try Self.json(events.stdout) as? [[String: Any]] ?? []).map { $0["kind"] as? String }
        #expect(kinds == ["submitted", "cancel_requested"])
        let human = try await TernBinary.run(["events", "demo"] + database)
        #expect(human.stdout.contains("pending → cancelled"))
        #expect(try await TernBinary.run(["jobs", "--state", "cancelled", "--json"] + database).stdout.contains(demoID))
    }

    @Test func aBadSpecIsReportedWithItsPositionAndNothingIsStored() async throws {
        let url = try await TestDatabase.fresh()
        let directory = TestDatabase.scratchDirectory("specs")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = directory + "/good.yaml", bad = directory + "/bad.yaml"
        try "name: fine\nrun: python t.py\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "name: broken\nrun: python t.py\nresources:\n  accelerators: H100:0\ntimout: 3h\n".write(toFile: bad, atomically: true, encoding: .utf8)
        _ = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/demo.yaml", "--database-url", url])
        let outcome = try await TernBinary.run(["submit", good, bad, "--database-url", url])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("\(bad):4:17: resources.accelerators: expected an accelerator count from 1 to 64 per node, found 0"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("\(bad):5:1: timout: unknown field; did you mean \"timeout\"?"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("2 problems found; nothing was submitted"))
        // The good file was not submitted either: a batch is all or nothing.
        #expect((try Self.json(try await TernBinary.run(["jobs", "--json", "--database-url", url]).stdout) as? [Any])?.isEmpty == true)

        // An unknown target is found against the registered ones.
        try "name: elsewhere\nrun: x\nplacement:\n  targets: [local-c]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let unknown = try await TernBinary.run(["submit", bad, "--database-url", url])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("\(bad):4:13: placement.targets[0]: unknown target \"local-c\"; did you mean \"local-a\"?"), "\(unknown.stderr)")

        // The dry run stores nothing and names the candidates.
        let dry = try await TernBinary.run(["submit", "--dry-run", "--json", good, "--database-url", url])
        #expect(dry.status == 0, "\(dry.stderr)")
        let plans = try Self.json(dry.stdout) as? [[String: Any]] ?? []
        #expect(plans.first?["candidates"] as? [String] == ["local-a", "local-b"])
        // Every key of a placement decision is there, absent values as null (docs/cli.md).
        let decision = try #require(plans.first?["placement"] as? [String: Any])
        #expect(decision.keys.contains("resume") && decision["resume"] is NSNull, "\(decision)")
        let candidates = decision["candidates"] as? [[String: Any]] ?? []
        #expect(!candidates.isEmpty && candidates.allSatisfy { Set($0.keys).isSuperset(of: ["offer", "excluded", "missing_bytes", "price_source"]) }, "\(candidates)")
        #expect((try Self.json(try await TernBinary.run(["jobs", "--json", "--database-url", url]).stdout) as? [Any])?.isEmpty == true)
    }

    /// More than 1,000 files go through the streamed path (a batch is sent while the next is
    /// parsed): a bad file in the second batch still rolls back the first, and is located.
    @Test func manyFilesAreStreamedAndStillAllOrNothing() async throws {
        let url = try await TestDatabase.fresh()
        let directory = TestDatabase.scratchDirectory("many-specs")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/demo.yaml", "--database-url", url])
        let files = (0..<1_205).map { String(format: "\(directory)/job-%04d.yaml", $0) }
        for (index, file) in files.enumerated() {
            try "name: sweep-\(index)\nrun: python train.py --seed \(index)\n".write(toFile: file, atomically: true, encoding: .utf8)
        }
        let bad = files[1_150]
        try "name: sweep-broken\nrun: python train.py\nnodes: 0\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await TernBinary.run(["submit", "--database-url", url] + files)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("\(bad):3:8: nodes:"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was submitted"), "\(refused.stderr)")
        #expect((try Self.json(try await TernBinary.run(["jobs", "--json", "--database-url", url]).stdout) as? [Any])?.isEmpty == true)

        try "name: sweep-1150\nrun: python train.py --seed 1150\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let stored = try await TernBinary.run(["submit", "--json", "--database-url", url] + files)
        #expect(stored.status == 0, "\(stored.stderr)")
        let names = (try Self.json(stored.stdout) as? [[String: Any]] ?? []).map { $0["name"] as? String }
        #expect(names == (0..<1_205).map { "sweep-\($0)" })
        let count = try await TernBinary.run(["jobs", "--json", "--limit", "5000", "--database-url", url])
        #expect((try Self.json(count.stdout) as? [Any])?.count == 1_205, "\(count.stderr)")
    }

    @Test func anIdempotencyKeyStoresTheJobOnce() async throws {
        let url = try await TestDatabase.fresh()
        _ = try await TernBinary.run(["targets", "apply", Self.repository + "/targets/demo.yaml", "--database-url", url])
        let arguments = ["submit", Self.repository + "/jobspecs/demo.yaml", "--idempotency-key", "ci-run-42", "--json", "--database-url", url]
        async let first = TernBinary.run(arguments)
        async let second = TernBinary.run(arguments)
        let outcomes = try await [first, second]
        #expect(outcomes.map(\.status) == [0, 0], "\(outcomes.map(\.stderr))")
        let ids = try outcomes.map { (try Self.json($0.stdout) as? [[String: Any]])?.first?["id"] as? String }
        #expect(ids[0] != nil && ids[0] == ids[1])
        #expect((try Self.json(try await TernBinary.run(["jobs", "--json", "--database-url", url]).stdout) as? [Any])?.count == 1)
    }

    @Test func unknownJobsAndBadFlagsAreClearErrors() async throws {
        let url = try await TestDatabase.fresh()
        let missing = try await TernBinary.run(["show", "nothing-like-this", "--database-url", url])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no job matches \"nothing-like-this\""))
        let badState = try await TernBinary.run(["jobs", "--state", "runing", "--database-url", url])
        #expect(badState.status == 2)
        #expect(badState.stderr.contains("unknown state \"runing\""))
        let badLabel = try await TernBinary.run(["jobs", "--label", "team", "--database-url", url])
        #expect(badLabel.status == 2)
    }
}
