import Foundation
@testable import TernCheckpoints
@testable import TernControl
import TernModel
import TernPostgres
import TernTestSupport
import Testing

/// A step directory under /tmp for one test, removed afterwards.
struct StepDirectory {
    let path: String

    init(_ files: [String: [UInt8]], marker: Bool = true) throws {
        path = TestDatabase.scratchDirectory("ckpt")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in files { try write(name, bytes) }
        if marker { try write(Completeness.ternMarker, []) }
    }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        let full = path + "/" + name
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Seals with 1 MiB chunks (the smallest a manifest allows), so small files have several.
    func seal() async throws -> SealedCheckpoint {
        try await CheckpointSealer(engine: HashingEngine(chunkSize: 1 << 20)).seal(directory: path)
    }
}

/// Deterministic bytes that differ by `seed`.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ ($0 >> 10)) }
}

/// A checkpoint of empty files named `names`, built without touching a disk (an empty file has no
/// chunks, so its sidecar is just the header).
func emptyFilesCheckpoint(_ names: [String]) -> SealedCheckpoint {
    let chunkSize = CheckpointManifest.defaultChunkSize
    let digests = names.map { name in
        FileDigest(path: name, size: 0, chunkDigests: [], crc32c: 0, root: FileRoot.root(size: 0, chunkSize: chunkSize, chunkDigests: []))
    }
    return CheckpointSealer.assemble(digests, markers: [], chunkSize: chunkSize, format: .marker)
}

@Suite struct CheckpointRepositoryTests {
    static func count(_ table: String, _ pool: PostgresPool) async throws -> Int {
        try await pool.query("SELECT count(*) FROM \(identifier: table)").scalar(Int.self)
    }

    @Test func recordingTheSameBytesTwiceStoresThemOnce() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        // A non-ASCII (NFC) name: the database's id check hashes the manifest's UTF-8 bytes.
        let directory = try StepDirectory(["model.bin": pattern(2_500_000, seed: 1), "sub/\u{E9}tat-\u{3BA}.bin": pattern(1000, seed: 2)])
        defer { directory.remove() }
        let repository = CheckpointRepository(pool: pool)

        let sealed = try await directory.seal()
        let first = try await repository.record(sealed, job: nil, step: nil, attempt: nil)
        #expect(first == RecordOutcome(id: sealed.id, newlyStored: true, newlyLinked: false, step: nil))
        // Sealed again from disk: the same id, nothing new stored.
        let again = try await directory.seal()
        #expect(again.id == sealed.id)
        let second = try await repository.record(again, job: nil, step: nil, attempt: nil)
        #expect(second == RecordOutcome(id: sealed.id, newlyStored: false, newlyLinked: false, step: nil))
        #expect(try await Self.count("checkpoints", pool) == 1)
        #expect(try await Self.count("checkpoint_files", pool) == 3)
        #expect(try await Self.count("job_checkpoints", pool) == 0)

        let files = try await pool.query("SELECT path, size, root, crc32c, role FROM checkpoint_files ORDER BY path").map { row in
            let (path, size, root, crc, role) = try row.decode(String.self, Int64.self, String.self, String.self, String.self)
            return ManifestFile(path: path, size: size, root: root, crc32c: crc, role: FileRole(rawValue: role)!)
        }
        #expect(files == sealed.manifest.files)
        let facts = try await pool.query("SELECT format, bytes, files FROM checkpoints").map { try $0.decode(String.self, Int64.self, Int.self) }
        #expect(facts.first?.0 == "marker" && facts.first?.1 == 2_501_000 && facts.first?.2 == 3)
    }

    @Test func concurrentRecordsOfOneCheckpointAllSucceedAndStoreItOnce() async throws {
        let pool = try await ControlDatabase.migratedPool(maxConnections: 8)
        defer { Task { await pool.close() } }
        let job = try await JobRepository(pool: pool).submit([sampleJob("racing")])[0]
        let directory = try StepDirectory(["a.bin": pattern(3_000_000, seed: 3)])
        defer { directory.remove() }
        let sealed = try await directory.seal()
        let repository = CheckpointRepository(pool: pool)

        // Half record it with no job, half for the job: every call succeeds, one stores the
        // checkpoint and one links the job.
        let outcomes = try await withThrowingTaskGroup(of: RecordOutcome.self) { group in
            for index in 0..<16 {
                group.addTask {
                    index.isMultiple(of: 2)
                        ? try await repository.record(sealed, job: nil, step: nil, attempt: nil)
                        : try await repository.record(sealed, job: job.id, step: 7, attempt: nil)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 16)
        #expect(outcomes.allSatisfy { $0.id == sealed.id })
        #expect(outcomes.filter(\.newlyStored).count == 1)
        #expect(outcomes.filter(\.newlyLinked).count == 1)
        #expect(outcomes.filter { $0.step == 7 }.count == 8)
        #expect(try await Self.count("checkpoints", pool) == 1)
        #expect(try await Self.count("checkpoint_files", pool) == 2)
        #expect(try await Self.count("job_checkpoints", pool) == 1)
        let events = try await JobRepository(pool: pool).events(jobID: job.id).filter { $0.kind == "checkpoint_recorded" }
        #expect(events.count == 1)
    }

    @Test func jobsAreLinkedByStepAndListedNewestStepFirst() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        let submitted = try await jobs.submit([sampleJob("train"), sampleJob("twin")])
        let (train, twin) = (submitted[0], submitted[1])
        let repository = CheckpointRepository(pool: pool)

        var sealedBySteps: [Int64: SealedCheckpoint] = [:]
        for (step, seed) in [(100, 10), (300, 30), (200, 20)] as [(Int64, UInt8)] {
            let directory = try StepDirectory(["weights.bin": pattern(1_500_000, seed: seed)])
            defer { directory.remove() }
            let sealed = try await directory.seal()
            sealedBySteps[step] = sealed
            let outcome = try await repository.record(sealed, job: train.id, step: step, attempt: nil)
            #expect(outcome.newlyStored && outcome.newlyLinked && outcome.step == step)
        }
        let listed = try await repository.list(job: train.id)
        #expect(listed.map(\.step) == [300, 200, 100])
        #expect(listed.map(\.checkpointID) == [300, 200, 100].map { sealedBySteps[$0]!.id })
        #expect(listed.allSatisfy { $0.files == 2 && $0.bytes == 1_500_000 && $0.format == "marker" && $0.jobID == train.id })

        // The same bytes for another job: one checkpoint, two links; the sealing time is the first's.
        let shared = sealedBySteps[200]!
        let forTwin = try await repository.record(shared, job: twin.id, step: 5, attempt: nil)
        #expect(!forTwin.newlyStored && forTwin.newlyLinked && forTwin.step == 5)
        #expect(try await Self.count("checkpoints", pool) == 3)
        #expect(try await repository.list(job: twin.id).map(\.checkpointID) == [shared.id])
        let stored = try await repository.checkpoint(reference: shared.id)
        #expect(Set(stored.jobs.map(\.jobName)) == ["train", "twin"])
        #expect(stored.jobs.first { $0.jobName == "twin" }?.step == 5)

        // Recording it for the same job again keeps the first step.
        let repeated = try await repository.record(shared, job: train.id, step: 999, attempt: nil)
        #expect(!repeated.newlyStored && !repeated.newlyLinked && repeated.step == 200)
        #expect(try await repository.list(job: train.id).map(\.step) == [300, 200, 100])

        // Each new link is a job event.
        let events = try await jobs.events(jobID: train.id).filter { $0.kind == "checkpoint_recorded" }
        #expect(events.count == 3)
        #expect(events.last?.message == "checkpoint \(shared.id.prefix(12)) at step 200")
        let details = try JSONSerialization.jsonObject(with: Data((events.last?.detailsJSON ?? "{}").utf8)) as? [String: Any]
        #expect(details?["checkpoint_id"] as? String == shared.id)
        #expect(details?["step"] as? Int == 200)

        #expect(try await repository.list(job: UUID()).isEmpty)
    }

    @Test func badLinksAreRefusedAndWriteNothing() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let jobs = JobRepository(pool: pool)
        try await TargetRepository(pool: pool).apply(TargetRepositoryTests.definitions("""
            targets:
              local-a: {kind: local, storage: "file:///tmp/a"}
            """))
        let submitted = try await jobs.submit([sampleJob("owner"), sampleJob("stranger")])
        try await pool.query("INSERT INTO attempts (job_id, number, idempotency_key, target) VALUES (\(submitted[0].id), 1, 'k-1', 'local-a')")
        let attempt = try await pool.query("SELECT id FROM attempts").scalar(UUID.self)
        let repository = CheckpointRepository(pool: pool)
        let sealed = emptyFilesCheckpoint(["a", "b"])

        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(sealed, job: UUID(), step: 1, attempt: nil) }
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(sealed, job: submitted[1].id, step: 1, attempt: attempt) }
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(sealed, job: submitted[0].id, step: nil, attempt: nil) }
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(sealed, job: nil, step: 3, attempt: nil) }
        // The refused calls rolled back the checkpoint they had inserted.
        #expect(try await Self.count("checkpoints", pool) == 0)
        #expect(try await Self.count("checkpoint_files", pool) == 0)

        let linked = try await repository.record(sealed, job: submitted[0].id, step: 1, attempt: attempt)
        #expect(linked.newlyStored && linked.newlyLinked)
        #expect(try await repository.list(job: submitted[0].id).first?.attemptID == attempt)

        // A checkpoint whose parts do not belong together is refused before the database.
        var forged = emptyFilesCheckpoint(["c"])
        forged.id = sealed.id
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(forged, job: nil, step: nil, attempt: nil) }
        var wrongSidecar = emptyFilesCheckpoint(["d"])
        wrongSidecar.sidecar = Array("TERNCHK1".utf8) + [0, 0, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 32)
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(wrongSidecar, job: nil, step: nil, attempt: nil) }
        var auto = emptyFilesCheckpoint(["e"])
        auto.format = .auto
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.record(auto, job: nil, step: nil, attempt: nil) }
    }

    @Test func checkpointsAreFoundByIdOrUniquePrefix() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let repository = CheckpointRepository(pool: pool)

        // Two manifests whose ids share their first 6 hex digits: about 5,000 tries by the
        // birthday bound, found deterministically.
        var seen: [String: SealedCheckpoint] = [:]
        var pair: (SealedCheckpoint, SealedCheckpoint)?
        var index = 0
        while pair == nil {
            let candidate = emptyFilesCheckpoint(["file-\(index)"])
            let prefix = String(candidate.id.prefix(6))
            if let earlier = seen[prefix] { pair = (earlier, candidate) } else { seen[prefix] = candidate }
            index += 1
        }
        let (a, b) = pair!
        try await repository.record(a, job: nil, step: nil, attempt: nil)
        try await repository.record(b, job: nil, step: nil, attempt: nil)

        #expect(try await repository.checkpoint(reference: a.id).id == a.id)
        #expect(try await repository.checkpoint(reference: b.id.uppercased()).id == b.id)
        // The shortest prefix that tells them apart.
        let common = zip(a.id, b.id).prefix { $0 == $1 }.count
        #expect(try await repository.checkpoint(reference: String(a.id.prefix(common + 1))).id == a.id)
        do {
            _ = try await repository.checkpoint(reference: String(a.id.prefix(6)))
            Issue.record("an ambiguous prefix was accepted")
        } catch let CheckpointLookupError.ambiguous(reference, candidates, more) {
            #expect(reference == String(a.id.prefix(6)))
            #expect(Set(candidates.map(\.id)) == [a.id, b.id])
            #expect(!more)
            let text = CheckpointLookupError.ambiguous(reference: reference, candidates: candidates, more: more).description
            #expect(text.contains(a.id) && text.contains(b.id))
        }
        await #expect(throws: CheckpointLookupError.malformed(reference: "abc12")) { try await repository.checkpoint(reference: "abc12") }
        await #expect(throws: CheckpointLookupError.malformed(reference: "xyz123")) { try await repository.checkpoint(reference: "xyz123") }
        await #expect(throws: CheckpointLookupError.malformed(reference: a.id + "0")) { try await repository.checkpoint(reference: a.id + "0") }
        let absent = a.id.hasPrefix("000000") ? "ffffff" : "000000"
        await #expect(throws: CheckpointLookupError.notFound(reference: absent)) { try await repository.checkpoint(reference: absent) }
    }

    @Test func theSidecarComesBackVerifiedAndLocatesDamage() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let directory = try StepDirectory(["big.bin": pattern(2_600_000, seed: 9), "small.txt": Array("hello\n".utf8)])
        defer { directory.remove() }
        let repository = CheckpointRepository(pool: pool)
        let sealed = try await directory.seal()
        try await repository.record(sealed, job: nil, step: nil, attempt: nil)

        let stored = try await repository.checkpoint(reference: String(sealed.id.prefix(10)))
        #expect(stored.manifestJSON == sealed.manifestJSON)
        #expect(stored.manifest == sealed.manifest)
        #expect(stored.sidecar == sealed.sidecar)
        #expect(stored.sidecar.count == 16 + 32 * 4)  // big.bin: 3 chunks, small.txt: 1, the empty marker: none
        #expect(stored.format == "marker" && stored.files == 3 && stored.bytes == 2_600_006 && stored.jobs.isEmpty)

        // The stored sidecar finds the damaged 1 MiB chunk of a file, as the local one would.
        var bytes = pattern(2_600_000, seed: 9)
        bytes[1_500_000] ^= 0xFF
        try directory.write("big.bin", bytes)
        let report = try await CheckpointVerifier(engine: HashingEngine(chunkSize: 1 << 20))
            .verify(directory: directory.path, manifest: stored.manifest, sidecar: stored.sidecar)
        #expect(report.changed.map(\.path) == ["big.bin"])
        #expect(report.changed.first?.ranges.map { [$0.start, $0.end] } == [[1 << 20, 2 << 20]])

        // The database refuses a sidecar that is not the manifest's, and a manifest under another id.
        await #expect(throws: PostgresError.self) {
            try await pool.query("UPDATE checkpoints SET sidecar = \(Data(repeating: 0, count: stored.sidecar.count))")
        }
        await #expect(throws: PostgresError.self) {
            try await pool.query("UPDATE checkpoints SET manifest = manifest || ' '")
        }
        // A row damaged behind the checks' back is refused on read, not returned.
        try await pool.query("ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_sidecar_matches_manifest")
        var damaged = stored.sidecar
        damaged[20] ^= 1
        try await pool.query("UPDATE checkpoints SET sidecar = \(Data(damaged))")
        await #expect(throws: CheckpointRepositoryError.self) { try await repository.checkpoint(reference: sealed.id) }
    }
}
