import Foundation
import TernCrypto
import TernStorage
import TernTestSupport
import Testing

/// The real thing: `tern checkpoint push` to S3 (moto, signatures checked) is killed with SIGKILL in
/// the middle of a multipart upload, run again, and finishes without sending the parts it had
/// journaled in PostgreSQL; then `verify --deep` proves the copy and `pull` brings it back.
@Suite("S3 push killed mid-upload")
struct S3PushKillTests {
    @Test func killedPushResumesFromTheJournal() async throws {
        let moto = try await S3TestSupport.moto.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        try await S3TestSupport.createBucket(bucket, on: moto)
        let database = ["--database-url", try await TestDatabase.fresh()]
        let directory = TestDatabase.scratchDirectory("s3push")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Four parts of exactly 5 MiB (S3's smallest), so any two journaled parts are 10 MiB.
        let big = S3TestSupport.bytes(20 << 20, seed: 42)
        try Data(big).write(to: URL(fileURLWithPath: directory + "/weights.bin"))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
        try Data().write(to: URL(fileURLWithPath: directory + "/TERN_COMPLETE"))
        let destination = "s3://\(bucket)/ckpts"
        let common = ["--to", destination, "--endpoint", moto.endpoint, "--part-size", "5", "--parallel", "1"] + database
        var environment = moto.environment
        environment["AWS_CA_BUNDLE"] = ""

        var crashing = environment
        crashing["TERN_CRASH_AT"] = "after-part:2"
        let killed = try await TernBinary.run(["checkpoint", "push", directory] + common, environment: crashing)
        #expect(killed.status == 128 + 9, "\(killed.stdout)\(killed.stderr)")
        let store = try S3Store(url: StoreURL(parsing: destination), options: S3TestSupport.options(moto))
        #expect(try await store.list(prefix: "checkpoints/").isEmpty, "a killed push left a commit marker")

        let resumed = try await TernBinary.run(["checkpoint", "push", directory, "--json"] + common, environment: environment)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(resumed.stdout.utf8)) as? [String: Any])
        // config.json went before the kill (files go in manifest order, one at a time here) and
        // two parts were journaled: only the other two parts move now.
        #expect(report["bytes_sent"] as? Int == (20 << 20) - (10 << 20), "\(report)")
        #expect(report["bytes_skipped"] as? Int == 2, "\(report)")
        let id = try #require(report["checkpoint_id"] as? String)

        let verify = try await TernBinary.run(["checkpoint", "verify", id, "--on", destination, "--endpoint", moto.endpoint, "--deep"] + database,
                                              environment: environment)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let restored = directory + "-restored"
        defer { try? FileManager.default.removeItem(atPath: restored) }
        let pull = try await TernBinary.run(["checkpoint", "pull", String(id.prefix(8)), "--from", destination, "--endpoint", moto.endpoint, restored],
                                            environment: environment)
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(FileManager.default.contents(atPath: restored + "/weights.bin") == Data(big))
        // No upload is left open on the store.
        let uploads = try await S3TestSupport.s3Request(moto, method: "GET", path: "/\(bucket)", query: [("uploads", "")])
        #expect(!uploads.bodyText.contains("<UploadId>"), "\(uploads.bodyText.prefix(500))")
    }
}
