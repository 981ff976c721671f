import Foundation
import TernCheckpoints
@testable import TernControl
import TernPostgres
import TernStorage
import TernTestSupport
import Testing

/// `tern gc` aborts the multipart uploads a killed transfer left on S3 (moto, signatures checked),
/// and leaves alone the ones a replicator journaled and anything outside `blobs/`.
@Suite("Leftover uploads")
struct LeftoverUploadTests {
    struct Killed: Error {}

    @Test func onlyOldUnjournaledUploadsUnderBlobsAreAborted() async throws {
        let pool = try await ControlDatabase.migratedPool()
        defer { Task { await pool.close() } }
        let moto = try await TestMoto.shared.value()
        let bucket = "tern-leftover-\(UUID().uuidString.lowercased().prefix(8))"
        try await moto.createBucket(bucket)
        let url = try StoreURL(parsing: "s3://\(bucket)")
        let store = try S3Store(url: url, options: StoreOptions(endpoint: moto.endpoint, environment: moto.environment))

        // Three uploads killed after their first part: one journaled, two not (one outside blobs/).
        let path = TestDatabase.scratchDirectory("leftover") + ".bin"
        try Data(pattern(11 << 20, seed: 7)).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        var started: [String: LargeUpload] = [:]
        for key in ["blobs/orphan", "blobs/journaled", "elsewhere/theirs"] {
            let seen = LockedUpload()
            await #expect(throws: StoreError.self) {
                try await store.putLarge(key, from: source, options: PutOptions(), partSize: S3Store.minimumPartSize, resuming: nil) { upload in
                    seen.set(upload)
                    if !upload.parts.isEmpty { throw Killed() }
                }
            }
            started[key] = try #require(seen.value)
        }
        let sealedDirectory = try StepDirectory(["a.bin": pattern(4096, seed: 1)])
        defer { sealedDirectory.remove() }
        let sealed = try await sealedDirectory.seal()
        try await CheckpointRepository(pool: pool).record(sealed, job: nil, step: nil, attempt: nil)
        let journal = ReplicaRepository(pool: pool).journal(checkpointID: sealed.id, store: url, target: nil, replicator: "r1", claim: .seconds(60))
        _ = try await journal.claim()
        try await journal.recordUpload(try #require(started["blobs/journaled"]))

        let collector = CheckpointCollector(pool: pool) { _, _ in store }
        let stores: [(url: StoreURL, target: String?)] = [(url, nil)]
        // (The age limit cannot be shown here: moto reports the same start time, 2010-11-10, for
        // every upload, so to moto every upload is old.)
        // A dry run names the orphan and aborts nothing.
        let dry = try await collector.abortLeftoverUploads(on: stores, olderThan: .zero, dryRun: true)
        #expect(dry.map(\.key) == ["blobs/orphan"])
        #expect(try await store.multipartUploads().count == 3)
        let aborted = try await collector.abortLeftoverUploads(on: stores, olderThan: .zero, dryRun: false)
        #expect(aborted == [.init(store: url.description, key: "blobs/orphan", uploadID: try #require(started["blobs/orphan"]).uploadID)])
        #expect(Set(try await store.multipartUploads().map(\.key)) == ["blobs/journaled", "elsewhere/theirs"])
        // The journaled upload can still be resumed and finished by its replicator.
        let finished = try await store.putLarge("blobs/journaled", from: source, options: PutOptions(), partSize: S3Store.minimumPartSize,
                                                resuming: started["blobs/journaled"]) { _ in }
        #expect(finished.size == 11 << 20)
        await journal.release()
    }
}

/// The last upload state a `putLarge` reported, from its checkpoint closure.
final class LockedUpload: @unchecked Sendable {
    private let lock = NSLock()
    private var upload: LargeUpload?
    func set(_ value: LargeUpload) { lock.withLock { upload = value } }
    var value: LargeUpload? { lock.withLock { upload } }
}
