import Foundation
import Glibc
import TernCheckpoints
import TernCrypto
import TernStorage
import TernTestSupport
import Testing

/// The replicator's commit protocol over each real (or, for Azure, faked) store: a crash inside a
/// large upload, resumed without resending finished parts; deep verification; restore; and an
/// object replaced behind Tern's back being caught.
@Suite("Replication across stores")
struct ReplicationAcrossStoresTests {
    struct InjectedCrash: Error {}

    enum Kind: String, CaseIterable, Sendable {
        case s3, gcs, azure
    }

    static func freshStore(_ kind: Kind) async throws -> any BlobStore {
        switch kind {
        case .s3: try await S3TestSupport.freshStore(prefix: "ckpts").store
        case .gcs: try await GCSTestSupport.freshStore(prefix: "ckpts").store
        case .azure: try await AzureTestSupport.freshStore(prefix: "ckpts").store
        }
    }

    /// A step directory: a 12 MiB + 5 byte file (three 5 MiB parts: S3's smallest part size), a small
    /// file, and the completion marker; sealed with 1 MiB chunks.
    static func checkpoint() async throws -> (String, SealedCheckpoint) {
        let directory = TestDatabase.scratchDirectory("replicate")
        try FileManager.default.createDirectory(atPath: directory + "/model", withIntermediateDirectories: true)
        try Data((0..<(12 << 20) + 5).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }).write(to: URL(fileURLWithPath: directory + "/model/weights.bin"))
        try Data("{\"step\": 100}".utf8).write(to: URL(fileURLWithPath: directory + "/trainer_state.json"))
        try Data().write(to: URL(fileURLWithPath: directory + "/TERN_COMPLETE"))
        return (directory, try await CheckpointSealer(engine: HashingEngine(chunkSize: 1 << 20)).seal(directory: directory))
    }

    @Test("crash inside a large upload, resume, verify deep, restore, catch a replaced object", arguments: Kind.allCases)
    func protocolOverStore(_ kind: Kind) async throws {
        let store = try await Self.freshStore(kind)
        let (directory, sealed) = try await Self.checkpoint()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = MemoryReplicaJournal()
        let partSize: Int64 = 5 << 20

        var crashing = Replicator(store: store, parallelism: 1, partSize: partSize)
        crashing.faultPoint = { if $0 == "after-part:1" { throw InjectedCrash() } }
        await #expect(throws: (any Error).self) { try await crashing.replicate(sealed, from: directory, journal: journal) }
        #expect(try await store.head(StoreLayout.commitMarker(id: sealed.id)) == nil, "a crashed copy left a commit marker")
        // Parts may go in parallel, so which part was journaled first depends on the store.
        let weights = try #require(sealed.manifest.files.first { $0.path == "model/weights.bin" })
        let journaled = await journal.objects[StoreLayout.blob(root: weights.root)]?.upload?.parts ?? []
        #expect(journaled.count == 1)
        let alreadySent = journaled.reduce(Int64(0)) { $0 + $1.size }

        let progress = TransferProgress(total: sealed.totalBytes)
        let report = try await Replicator(store: store, parallelism: 1, partSize: partSize, progress: progress)
            .replicate(sealed, from: directory, journal: journal)
        // Only the parts not journaled and the small files went over the wire.
        #expect(progress.completed == sealed.totalBytes - alreadySent, "\(kind): \(progress.completed) bytes sent on resume")
        #expect(report.level == .l1)
        #expect(await journal.state == .committed)

        let replicator = Replicator(store: store, partSize: partSize)
        let deep = try await replicator.verify(sealed, journal: journal, deep: true)
        #expect(deep.isConsistent, "\(kind): \(deep.problems)")

        let restored = directory + "-restored"
        defer { try? FileManager.default.removeItem(atPath: restored) }
        _ = try await replicator.restore(id: sealed.id, to: restored)
        #expect(FileManager.default.contents(atPath: restored + "/model/weights.bin") == FileManager.default.contents(atPath: directory + "/model/weights.bin"))

        // Replace the small file's object behind Tern's back, with different bytes of the same size.
        let state = try #require(sealed.manifest.files.first { $0.path == "trainer_state.json" })
        try await store.put(StoreLayout.blob(root: state.root), bytes: Array("{\"step\": 999}".utf8))
        let shallow = try await replicator.verify(sealed, journal: journal, deep: false)
        #expect(shallow.problems.map(\.path) == ["trainer_state.json"], "\(kind): \(shallow.problems)")
        let caught = try await replicator.verify(sealed, journal: journal, deep: true)
        #expect(caught.problems.first?.ranges.map(\.description) == ["bytes 0..<13"], "\(kind): \(caught.problems)")
    }
}
