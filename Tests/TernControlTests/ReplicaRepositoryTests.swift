import Foundation
import TernCheckpoints
@testable import TernControl
import TernPostgres
import TernStorage
import TernTestSupport
import Testing

/// The replicator's journal in PostgreSQL: resuming after a crash from the rows alone, one
/// replicator per replica, and fencing of a replicator that lost its claim.
@Suite("ReplicaRepository")
struct ReplicaRepositoryTests {
    struct InjectedCrash: Error {}

    static func setUp() async throws -> (PostgresPool, StepDirectory, SealedCheckpoint, FileStore) {
        let pool = try await ControlDatabase.migratedPool()
        let directory = try StepDirectory(["a.bin": pattern(3 << 20, seed: 1), "b.bin": pattern(5000, seed: 2)])
        let sealed = try await directory.seal()
        try await CheckpointRepository(pool: pool).record(sealed, job: nil, step: nil, attempt: nil)
        let storePath = TestDatabase.scratchDirectory("store")
        let store = try FileStore(url: StoreURL(parsing: "file://\(storePath)"))
        return (pool, directory, sealed, store)
    }

    @Test func aCrashedReplicationResumesFromTheDatabaseWithoutResending() async throws {
        let (pool, directory, sealed, store) = try await Self.setUp()
        defer { directory.remove() }
        let replicas = ReplicaRepository(pool: pool)
        var crashing = Replicator(store: store, parallelism: 1, partSize: 1 << 20)
        crashing.faultPoint = { if $0 == "after-data:1" { throw InjectedCrash() } }
        // The claim lasts zero seconds: the "crashed" replicator's claim has lapsed at once.
        let first = replicas.journal(checkpointID: sealed.id, store: store.url, target: nil, replicator: "r1", claim: .zero)
        await #expect(throws: InjectedCrash.self) { try await crashing.replicate(sealed, from: directory.path, journal: first) }

        let afterCrash = try await replicas.replicas(checkpointID: sealed.id)
        #expect(afterCrash.map(\.state) == [.uploading])
        let objects = try await pool.query("SELECT count(*) FROM replica_objects WHERE size IS NOT NULL").scalar(Int64.self)
        #expect(objects == 1)

        // A new process: a new replicator, the same rows.
        let second = replicas.journal(checkpointID: sealed.id, store: store.url, target: "local", replicator: "r2")
        let report = try await Replicator(store: store, parallelism: 1, partSize: 1 << 20).replicate(sealed, from: directory.path, journal: second)
        #expect(report.objectsSkipped == 1)
        #expect(report.objectsSent == 2)
        let done = try #require(try await replicas.replicas(checkpointID: sealed.id).first)
        #expect(done.state == .committed)
        #expect(done.level == .l1)
        #expect(done.target == "local")
        #expect(done.committedAt != nil)
    }

    @Test func aSecondReplicatorWaitsForTheClaimAndALapsedOneIsFenced() async throws {
        let (pool, directory, sealed, store) = try await Self.setUp()
        defer { directory.remove() }
        let replicas = ReplicaRepository(pool: pool)
        let holder = replicas.journal(checkpointID: sealed.id, store: store.url, target: nil, replicator: "holder")
        _ = try await holder.claim()
        let other = replicas.journal(checkpointID: sealed.id, store: store.url, target: nil, replicator: "other")
        do {
            _ = try await other.claim()
            Issue.record("two replicators held one replica")
        } catch let error as ReplicaClaimError {
            #expect(error.description.contains("another replicator (holder)"))
        }
        await holder.release()
        _ = try await other.claim()
        // The first replicator lost its claim: its writes change nothing and fail.
        await #expect(throws: ReplicaClaimError.self) {
            try await holder.recordStored(ObjectInfo(key: "blobs/x", size: 1, version: "v"))
        }
        await #expect(throws: ReplicaClaimError.self) { try await holder.transition(to: .committed, level: .l1, error: nil) }
        let rows = try await pool.query("SELECT count(*) FROM replica_objects").scalar(Int64.self)
        #expect(rows == 0)
        #expect(try await replicas.replicas(checkpointID: sealed.id).first?.state == .pending)
    }

    @Test func aLargeUploadStateRoundTripsThroughTheDatabase() async throws {
        let (pool, directory, sealed, store) = try await Self.setUp()
        defer { directory.remove() }
        let journal = ReplicaRepository(pool: pool).journal(checkpointID: sealed.id, store: store.url, target: nil, replicator: "r")
        _ = try await journal.claim()
        let upload = LargeUpload(uploadID: "upload-1", key: "blobs/abc", partSize: 1 << 20, totalSize: 3 << 20,
                                 parts: [LargeUpload.Part(number: 1, size: 1 << 20, tag: "\"etag-1\"", crc32c: 0xDEADBEEF)])
        try await journal.recordUpload(upload)
        #expect(try await journal.recordedObjects()["blobs/abc"]?.upload == upload)
        try await journal.recordStored(ObjectInfo(key: "blobs/abc", size: 3 << 20, crc32c: 0xFFFFFFFF, version: "g1"))
        let stored = try #require(try await journal.recordedObjects()["blobs/abc"])
        #expect(stored.upload == nil)
        #expect(stored.stored == ObjectInfo(key: "blobs/abc", size: 3 << 20, crc32c: 0xFFFFFFFF, version: "g1"))
    }
}
