import Foundation
import Glibc
import TernCheckpoints
import TernCrypto
import TernStorage
import Testing

/// The commit protocol, resumption, dedup, verification and restore, on the file store.
/// (The same replicator runs over S3, GCS and Azure; their own suites test the stores.)
@Suite("Replication")
struct ReplicationTests {
    /// A crash: thrown at a named point of the replicator.
    struct InjectedCrash: Error {}

    static func store(_ scratch: Scratch) throws -> FileStore {
        try FileStore(url: StoreURL(parsing: "file://\(scratch.at("store"))"))
    }

    /// A checkpoint directory with a 3-chunk data file, a second file, a shared-bytes copy and a marker.
    static func sealed(_ scratch: Scratch, seed: UInt64 = 11) async throws -> (String, SealedCheckpoint) {
        let directory = scratch.at("step-100")
        scratch.write("step-100/model/shard-0.bin", seededBytes(3 * mebibyte, seed: seed))
        scratch.write("step-100/model/shard-1.bin", seededBytes(mebibyte + 7, seed: seed + 1))
        scratch.write("step-100/model/copy-of-shard-1.bin", seededBytes(mebibyte + 7, seed: seed + 1))
        scratch.write("step-100/TERN_COMPLETE", "")
        return (directory, try await smallSealer.seal(directory: directory))
    }

    @Test("a replicated checkpoint is committed, consistent at L1 and L2, and restores byte for byte")
    func replicateVerifyRestore() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let journal = MemoryReplicaJournal()
            let replicator = Replicator(store: store, partSize: Int64(mebibyte))
            let report = try await replicator.replicate(checkpoint, from: directory, journal: journal)
            // Four files, three distinct contents (the copy shares shard-1's root).
            #expect(report.objectsSent == 3)
            #expect(report.bytesSent == Int64(3 * mebibyte + mebibyte + 7))
            #expect(!report.alreadyCommitted)
            #expect(await journal.state == .committed)
            #expect(await journal.level == .l1)
            #expect(try await store.head(StoreLayout.commitMarker(id: checkpoint.id)) != nil)

            let shallow = try await replicator.verify(checkpoint, journal: journal, deep: false)
            #expect(shallow.isConsistent, "\(shallow.problems)")
            let deep = try await replicator.verify(checkpoint, journal: journal, deep: true)
            #expect(deep.isConsistent, "\(deep.problems)")
            #expect(deep.bytesRead == Int64(3 * mebibyte + mebibyte + 7 + 0))

            let restored = scratch.at("restored")
            // The progress starts with no total (pull knows only the id) and learns it from the manifest.
            let progress = TransferProgress(total: 0)
            var restoring = replicator
            restoring.progress = progress
            let back = try await restoring.restore(id: checkpoint.id, to: restored)
            #expect(back.id == checkpoint.id)
            #expect(progress.total == checkpoint.manifest.totalBytes)
            #expect(progress.completed >= checkpoint.manifest.totalBytes)
            for file in checkpoint.manifest.files {
                #expect(scratch.read("restored/\(file.path)") == scratch.read("step-100/\(file.path)"), "\(file.path)")
            }
            // Restore never writes into an existing directory.
            await #expect(throws: CheckpointError.self) { try await replicator.restore(id: checkpoint.id, to: restored) }
        }
    }

    @Test("replicating again sends nothing; a second checkpoint sharing files sends only the changed ones")
    func dedup() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let replicator = Replicator(store: store, partSize: Int64(mebibyte))
            _ = try await replicator.replicate(checkpoint, from: directory, journal: MemoryReplicaJournal())
            let again = try await replicator.replicate(checkpoint, from: directory, journal: MemoryReplicaJournal())
            #expect(again.bytesSent == 0)
            #expect(again.objectsSkipped == 3)
            #expect(again.alreadyCommitted)

            // The next step changes one shard only (the "LoRA adapter"); the frozen base is not sent.
            scratch.write("step-200/model/shard-0.bin", scratch.read("step-100/model/shard-0.bin"))
            scratch.write("step-200/model/shard-1.bin", seededBytes(mebibyte + 7, seed: 99))
            scratch.write("step-200/TERN_COMPLETE", "")
            let next = try await smallSealer.seal(directory: scratch.at("step-200"))
            let report = try await replicator.replicate(next, from: scratch.at("step-200"), journal: MemoryReplicaJournal())
            #expect(report.objectsSent == 1)
            #expect(report.bytesSent == Int64(mebibyte + 7))
            #expect(report.bytesSkipped == Int64(3 * mebibyte))
        }
    }

    @Test("a crash in the middle leaves no marker; the next run resumes without resending finished files")
    func crashAndResume() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let journal = MemoryReplicaJournal()
            var crashing = Replicator(store: store, parallelism: 1, partSize: Int64(mebibyte))
            crashing.faultPoint = { point in if point == "after-data:2" { throw InjectedCrash() } }
            await #expect(throws: InjectedCrash.self) {
                try await crashing.replicate(checkpoint, from: directory, journal: journal)
            }
            #expect(try await store.head(StoreLayout.commitMarker(id: checkpoint.id)) == nil)
            #expect(try await store.head(StoreLayout.manifest(id: checkpoint.id)) == nil)
            #expect(await journal.state == .uploading)

            let resumed = try await Replicator(store: store, parallelism: 1, partSize: Int64(mebibyte))
                .replicate(checkpoint, from: directory, journal: journal)
            #expect(resumed.objectsSkipped == 2)
            #expect(resumed.objectsSent == 1)
            #expect(await journal.state == .committed)
        }
    }

    @Test("a crash inside a large upload continues from the last part")
    func crashInsideLargeUpload() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let shard = checkpoint.manifest.files.first { $0.path == "model/shard-0.bin" }!
            // Half-finished: parts 1 and 2 of shard-0's three are on the store.
            let journal = MemoryReplicaJournal()
            let source = BlobSource.file(path: "\(directory)/model/shard-0.bin", offset: 0, length: shard.size)
            let partSize = Int64(mebibyte)
            let recorder = UploadRecorder()
            await #expect(throws: StoreError.self) {
                try await store.putLarge(StoreLayout.blob(root: shard.root), from: source, options: PutOptions(), partSize: partSize, resuming: nil) { upload in
                    await recorder.set(upload)
                    if upload.parts.count == 2 { throw InjectedCrash() }
                }
            }
            let halfway = try #require(await recorder.upload)
            #expect(halfway.parts.count == 2)
            try await journal.recordUpload(halfway)

            let progress = TransferProgress(total: 0)
            let replicator = Replicator(store: store, parallelism: 1, partSize: partSize, progress: progress)
            _ = try await replicator.replicate(checkpoint, from: directory, journal: journal)
            // Only the third part of shard-0 and the other file were sent (the copy is deduped).
            #expect(progress.completed == partSize + Int64(mebibyte + 7))
            let deep = try await replicator.verify(checkpoint, journal: journal, deep: true)
            #expect(deep.isConsistent, "\(deep.problems)")
        }
    }

    @Test("a corrupted object is named with its range by deep verification, demoted, and refused by restore")
    func corruptionCaught() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let journal = MemoryReplicaJournal()
            let replicator = Replicator(store: store, partSize: Int64(mebibyte))
            _ = try await replicator.replicate(checkpoint, from: directory, journal: journal)
            let shard = checkpoint.manifest.files.first { $0.path == "model/shard-0.bin" }!
            overwriteByte(at: Int64(mebibyte + 5), of: scratch.at("store/\(StoreLayout.blob(root: shard.root))"), with: 0xAA)

            let deep = try await replicator.verify(checkpoint, deep: true)
            #expect(!deep.isConsistent)
            #expect(deep.problems.map(\.path) == ["model/shard-0.bin"])
            #expect(deep.problems.first?.ranges.map(\.description) == ["bytes 1048576..<2097152"])

            // With the journal, the changed version alone gives it away, without reading a byte.
            let shallow = try await replicator.verify(checkpoint, journal: journal, deep: false)
            #expect(shallow.problems.first?.problem.contains("replaced behind Tern's back") == true)

            try await replicator.demote(checkpoint.id, journal: journal, reason: deep.problems.map(\.description).joined())
            #expect(await journal.state == .corrupt)
            await #expect(throws: CheckpointError.self) { try await replicator.restore(id: checkpoint.id, to: scratch.at("restored")) }
            #expect(!FileManager.default.fileExists(atPath: scratch.at("restored")))

            // Replicating again repairs it: the changed object is sent again.
            let repaired = try await replicator.replicate(checkpoint, from: directory, journal: journal, deep: true)
            #expect(repaired.objectsSent == 1)
            #expect(try await replicator.verify(checkpoint, journal: journal, deep: true).isConsistent)
        }
    }

    @Test("restore refuses bytes that do not match the manifest, naming the file and range")
    func restoreChecksEveryChunk() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let replicator = Replicator(store: store, partSize: Int64(mebibyte))
            _ = try await replicator.replicate(checkpoint, from: directory, journal: MemoryReplicaJournal())
            let shard = checkpoint.manifest.files.first { $0.path == "model/shard-0.bin" }!
            overwriteByte(at: 10, of: scratch.at("store/\(StoreLayout.blob(root: shard.root))"), with: 0x55)
            do {
                _ = try await replicator.restore(id: checkpoint.id, to: scratch.at("restored"))
                Issue.record("restore accepted corrupted bytes")
            } catch {
                #expect("\(error)".contains("model/shard-0.bin"))
                #expect("\(error)".contains("bytes 0..<1048576"))
            }
            #expect(!FileManager.default.fileExists(atPath: scratch.at("restored")))
        }
    }

    @Test("two replicators on one replica both finish, and the replica is consistent")
    func twoReplicators() async throws {
        try await withScratch { scratch in
            let (directory, checkpoint) = try await Self.sealed(scratch)
            let store = try Self.store(scratch)
            let replicator = Replicator(store: store, partSize: Int64(mebibyte))
            async let first = replicator.replicate(checkpoint, from: directory, journal: MemoryReplicaJournal())
            async let second = replicator.replicate(checkpoint, from: directory, journal: MemoryReplicaJournal())
            let reports = try await [first, second]
            #expect(reports.filter { !$0.alreadyCommitted }.count <= 1)
            #expect(try await replicator.verify(checkpoint, deep: true).isConsistent)
        }
    }
}

actor UploadRecorder {
    var upload: LargeUpload?
    func set(_ upload: LargeUpload) { self.upload = upload }
}
