import Foundation
import Glibc
public import TernStorage
internal import TernCrypto

/// What one replication did.
public struct ReplicationReport: Sendable, Codable, Hashable {
    public var checkpointID: String
    public var store: String
    /// Objects sent, and the bytes that went over the wire for them (a resumed large upload counts
    /// only the parts sent now; a retried request counts twice).
    public var objectsSent = 0
    public var bytesSent: Int64 = 0
    /// Objects already on the store (sent by an earlier run, or the same bytes from another
    /// checkpoint), not sent again.
    public var objectsSkipped = 0
    public var bytesSkipped: Int64 = 0
    public var level: VerificationLevel = .l1
    /// The commit marker was already there (an earlier run or another replicator committed it).
    public var alreadyCommitted = false

    enum CodingKeys: String, CodingKey {
        case checkpointID = "checkpoint_id", store, level
        case objectsSent = "objects_sent", bytesSent = "bytes_sent"
        case objectsSkipped = "objects_skipped", bytesSkipped = "bytes_skipped"
        case alreadyCommitted = "already_committed"
    }
}

/// A problem found on a store.
public struct ReplicaProblem: Sendable, Codable, Hashable, CustomStringConvertible {
    public var path: String
    public var problem: String
    /// Byte ranges `[start, end)` whose chunk digests differ (deep verification only).
    public var ranges: [VerificationReport.ByteRange]

    public var description: String {
        ranges.isEmpty ? "\(path): \(problem)" : "\(path): \(problem) at \(ranges.map(\.description).joined(separator: ", "))"
    }
}

/// The result of checking a checkpoint on a store.
public struct ReplicaVerification: Sendable, Encodable, Hashable {
    public var checkpointID: String
    public var store: String
    public var level: VerificationLevel
    public var committed: Bool
    public var problems: [ReplicaProblem]
    public var filesChecked: Int
    public var bytesRead: Int64

    public var isConsistent: Bool { committed && problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case checkpointID = "checkpoint_id", store, level, committed, problems
        case filesChecked = "files_checked", bytesRead = "bytes_read"
        case isConsistent = "consistent"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(checkpointID, forKey: .checkpointID)
        try container.encode(store, forKey: .store)
        try container.encode(level, forKey: .level)
        try container.encode(committed, forKey: .committed)
        try container.encode(problems, forKey: .problems)
        try container.encode(filesChecked, forKey: .filesChecked)
        try container.encode(bytesRead, forKey: .bytesRead)
        try container.encode(isConsistent, forKey: .isConsistent)
    }
}

/// A checkpoint brought back from a store.
public struct RestoredCheckpoint: Sendable {
    public var id: String
    public var manifest: CheckpointManifest
    public var manifestJSON: String
    public var sidecar: [UInt8]
}

/// Copies a sealed checkpoint to a store with the commit protocol of DESIGN §5, checks it there,
/// and brings it back.
///
/// Order on the store: data files → verify → framework marker files → verify → manifest and
/// sidecar → create-only commit marker → pointer files → the journal says `committed`. A crash at
/// any point leaves no marker (or a marker over a complete checkpoint), and the next run resumes
/// from the journal: objects it recorded are checked by version, not sent again; a large upload
/// continues from its last part.
///
/// Two replicators on one replica cannot corrupt it: objects are named by their content's root and
/// written whole or not at all, and the marker is create-only. The PostgreSQL journal also lets only
/// one of them work at a time.
public struct Replicator: Sendable {
    public var store: any BlobStore
    /// Transfers at once.
    public var parallelism: Int
    /// Files larger than this go in parts that survive a crash.
    public var partSize: Int64
    /// 16 MiB: four parts per 64 MiB chunk, so every chunk boundary is a part boundary. Measured
    /// against moto (docs/benchmarks.md), 64 MiB parts took 20 % longer for the same bytes, and
    /// smaller parts lose less to a crash.
    public static let defaultPartSize: Int64 = 16 << 20
    public var progress: TransferProgress?
    /// Called at named points (`after-data:<n>` after the n-th data object, `after-marker:<n>`,
    /// `after-part:<n>` after a large upload's n-th part is journaled, `before-commit`,
    /// `after-commit`, `after-pointer:<n>`); a test throws there, or kills the process, to crash.
    public var faultPoint: (@Sendable (String) throws -> Void)?

    public init(store: any BlobStore, parallelism: Int = 4, partSize: Int64 = Replicator.defaultPartSize, progress: TransferProgress? = nil) {
        self.store = store
        self.parallelism = max(1, parallelism)
        self.partSize = partSize
        self.progress = progress
    }

    /// One object to hold: the bytes of one or more manifest files with the same root.
    struct Blob: Sendable {
        var key: String
        var file: ManifestFile
        var fileIndex: Int
        var crc32c: UInt32
    }

    /// Unique blobs by role, in the order they are sent: data, marker, pointer.
    func blobs(of checkpoint: SealedCheckpoint) throws(CheckpointError) -> (data: [Blob], markers: [Blob], pointers: [Blob]) {
        var seen = Set<String>()
        var groups: [FileRole: [Blob]] = [:]
        for role in [FileRole.data, .marker, .pointer] {
            for (index, file) in checkpoint.manifest.files.enumerated() where file.role == role && !seen.contains(file.root) {
                seen.insert(file.root)
                guard let crc = UInt32(file.crc32c, radix: 16) else { throw CheckpointError("the manifest's crc32c of \(file.path) is not hex") }
                groups[role, default: []].append(Blob(key: StoreLayout.blob(root: file.root), file: file, fileIndex: index, crc32c: crc))
            }
        }
        return (groups[.data] ?? [], groups[.marker] ?? [], groups[.pointer] ?? [])
    }

    // MARK: Replicate

    public func replicate(_ checkpoint: SealedCheckpoint, from directory: String, journal: any ReplicaJournal, deep: Bool = false) async throws -> ReplicationReport {
        let known = try await journal.claim()
        do {
            let report = try await replicateClaimed(checkpoint, from: directory, journal: journal, known: known, deep: deep)
            await journal.release()
            return report
        } catch {
            // The journal keeps what was stored; the replica stays uploading so the next run resumes.
            try? await journal.transition(to: .uploading, level: nil, error: "\(error)")
            await journal.release()
            throw error
        }
    }

    private func replicateClaimed(_ checkpoint: SealedCheckpoint, from directory: String, journal: any ReplicaJournal,
                                  known: [String: JournaledObject], deep: Bool) async throws -> ReplicationReport {
        var report = ReplicationReport(checkpointID: checkpoint.id, store: store.url.description)
        let (data, markers, pointers) = try blobs(of: checkpoint)
        try await journal.transition(to: .uploading, level: nil, error: nil)

        try await send(data, from: directory, journal: journal, known: known, report: &report, label: "data")
        try await send(markers, from: directory, journal: journal, known: known, report: &report, label: "marker")

        try await journal.transition(to: .verifying, level: nil, error: nil)
        let sidecarDigests = try decodeSidecar(checkpoint)
        let problems = try await check(data + markers, checkpoint: checkpoint, sidecar: sidecarDigests, journal: journal, deep: deep).problems
        if !problems.isEmpty {
            let text = problems.map(\.description).joined(separator: "; ")
            try await journal.transition(to: .corrupt, level: nil, error: text)
            throw CheckpointError("\(store.url): the copy of \(checkpoint.id.prefix(12)) failed verification: \(text)")
        }

        try await putImmutable(StoreLayout.manifest(id: checkpoint.id), Array(checkpoint.manifestJSON.utf8))
        try await putImmutable(StoreLayout.sidecar(id: checkpoint.id), checkpoint.sidecar)
        try faultPoint?("before-commit")
        report.alreadyCommitted = try await putImmutable(StoreLayout.commitMarker(id: checkpoint.id), Array(checkpoint.id.utf8))
        try faultPoint?("after-commit")

        try await send(pointers, from: directory, journal: journal, known: known, report: &report, label: "pointer")
        report.level = deep ? .l2 : .l1
        try await journal.transition(to: .committed, level: report.level, error: nil)
        return report
    }

    /// Writes a small object that must never change (manifest, sidecar, marker) create-only.
    /// Returns true when an identical object was already there; different bytes are an error.
    @discardableResult
    private func putImmutable(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        do {
            try await store.put(key, from: .bytes(bytes), options: PutOptions(createOnly: true))
            return false
        } catch {
            guard error.kind == .alreadyExists || error.kind == .preconditionFailed else { throw error }
            let existing = try await store.getBytes(key)
            guard existing == bytes else {
                throw CheckpointError("\(store.url) key \(key): an object with different bytes is already there; it was not written by Tern for this checkpoint")
            }
            return true
        }
    }

    /// Sends the blobs not already on the store, `parallelism` at a time.
    private func send(_ blobs: [Blob], from directory: String, journal: any ReplicaJournal, known: [String: JournaledObject],
                      report: inout ReplicationReport, label: String) async throws {
        var sent = 0
        try await withThrowingTaskGroup(of: (Bool, Int64).self) { group in
            var next = 0
            func startNext() {
                guard next < blobs.count else { return }
                let blob = blobs[next]
                next += 1
                group.addTask { try await sendOne(blob, from: directory, journal: journal, known: known[blob.key]) }
            }
            for _ in 0..<min(parallelism, blobs.count) { startNext() }
            while let (didSend, bytes) = try await group.next() {
                if didSend {
                    report.objectsSent += 1
                    report.bytesSent += bytes
                } else {
                    report.objectsSkipped += 1
                    report.bytesSkipped += bytes
                }
                sent += 1
                try faultPoint?("after-\(label):\(sent)")
                startNext()
            }
        }
    }

    /// Returns whether bytes were sent, and how many (or how many were skipped).
    private func sendOne(_ blob: Blob, from directory: String, journal: any ReplicaJournal, known: JournaledObject?) async throws -> (Bool, Int64) {
        let size = blob.file.size
        var existing = try await store.head(blob.key)
        if let recorded = known?.stored {
            if let existing, existing.size == size, existing.version == recorded.version { return (false, size) }
            // Missing, or replaced behind Tern's back: not the object this journal recorded.
            try await journal.forget(key: blob.key)
            if existing != nil {
                try await store.delete(blob.key)
                existing = nil
            }
        }
        // Whole-file dedup: the object is named by its content's root, so an object of the right
        // size there (with the right CRC32C where the store keeps one) holds these bytes.
        if known?.upload == nil, let found = existing {
            if found.size == size && (found.crc32c == nil || found.crc32c == blob.crc32c) {
                try await journal.recordStored(found)
                return (false, size)
            }
            // The right name with the wrong size or checksum: damaged. Replace it.
            try await store.delete(blob.key)
        }
        let path = try CheckpointPath.join(directory, blob.file.path)
        let source = BlobSource.file(path: path, offset: 0, length: size)
        // Create-only: an object under this root is never overwritten, so a second replicator
        // writing the same bytes at the same time cannot change what the first one recorded.
        // The bytes this object really puts on the wire (a resumed upload's remaining parts, a
        // retried request twice), counted into the command's progress as well.
        let moved = TransferProgress(total: size, parent: progress)
        let options = PutOptions(createOnly: true, crc32c: blob.crc32c, progress: moved)
        let info: ObjectInfo
        do {
            info = try await upload(blob, source: source, options: options, known: known, journal: journal)
        } catch {
            guard error.kind == .alreadyExists || error.kind == .preconditionFailed,
                  let winner = try await store.head(blob.key), winner.size == size else { throw error }
            try await journal.recordStored(winner)
            return (false, size)
        }
        try await journal.recordStored(info)
        return (true, moved.completed)
    }

    private func upload(_ blob: Blob, source: BlobSource, options: PutOptions, known: JournaledObject?,
                        journal: any ReplicaJournal) async throws(StoreError) -> ObjectInfo {
        let size = blob.file.size
        if size > partSize {
            return try await store.putLarge(blob.key, from: source, options: options, partSize: LargeUpload.partSize(for: size, preferred: partSize),
                                            resuming: known?.upload) { upload in
                try await journal.recordUpload(upload)
                try faultPoint?("after-part:\(upload.parts.count)")
            }
        }
        return try await store.put(blob.key, from: source, options: options)
    }

    private func decodeSidecar(_ checkpoint: SealedCheckpoint) throws(CheckpointError) -> [[SHA256Digest]] {
        do {
            return try ChunkSidecar.decode(checkpoint.sidecar, for: checkpoint.manifest)
        } catch {
            throw CheckpointError("\(error)")
        }
    }

    // MARK: Verify

    /// Checks a checkpoint on the store: the marker, the manifest, and every file (L1: size,
    /// version, CRC32C; L2 with `deep`: every byte read back against the chunk digests).
    public func verify(_ checkpoint: SealedCheckpoint, journal: (any ReplicaJournal)? = nil, deep: Bool) async throws -> ReplicaVerification {
        let (data, markers, pointers) = try blobs(of: checkpoint)
        var result = try await check(data + markers + pointers, checkpoint: checkpoint, sidecar: try decodeSidecar(checkpoint), journal: journal, deep: deep)
        let marker = try? await store.getBytes(StoreLayout.commitMarker(id: checkpoint.id))
        result.committed = marker == Array(checkpoint.id.utf8)
        if let manifest = try? await store.getBytes(StoreLayout.manifest(id: checkpoint.id)) {
            if SHA256.hash(manifest).hex != checkpoint.id {
                result.problems.append(ReplicaProblem(path: StoreLayout.manifest(id: checkpoint.id), problem: "the stored manifest does not hash to the checkpoint id", ranges: []))
            }
        } else {
            result.problems.append(ReplicaProblem(path: StoreLayout.manifest(id: checkpoint.id), problem: "missing", ranges: []))
        }
        return result
    }

    private func check(_ blobs: [Blob], checkpoint: SealedCheckpoint, sidecar: [[SHA256Digest]], journal: (any ReplicaJournal)?, deep: Bool) async throws -> ReplicaVerification {
        let recorded = try await journal?.recordedObjects() ?? [:]
        var result = ReplicaVerification(checkpointID: checkpoint.id, store: store.url.description, level: deep ? .l2 : .l1,
                                         committed: false, problems: [], filesChecked: 0, bytesRead: 0)
        for blob in blobs {
            result.filesChecked += 1
            guard let info = try await store.head(blob.key) else {
                result.problems.append(ReplicaProblem(path: blob.file.path, problem: "missing on the store (\(blob.key))", ranges: []))
                continue
            }
            if info.size != blob.file.size {
                result.problems.append(ReplicaProblem(path: blob.file.path, problem: "the store holds \(info.size) bytes, the manifest \(blob.file.size)", ranges: []))
                continue
            }
            // Cheap checks first; with `deep` the bytes are read back anyway, so the report can
            // also say which ranges differ.
            var findings: [String] = []
            if let crc = info.crc32c, crc != blob.crc32c {
                findings.append("the store's CRC32C differs from the manifest's")
            }
            if let pinned = recorded[blob.key]?.stored?.version, let version = info.version, pinned != version {
                findings.append("the object was replaced behind Tern's back (version \(pinned) became \(version))")
            }
            let cheapFindings: String? = findings.isEmpty ? nil : findings.joined(separator: "; ")
            guard deep else {
                if let cheapFindings { result.problems.append(ReplicaProblem(path: blob.file.path, problem: cheapFindings, ranges: [])) }
                continue
            }
            // Deep: read it back even when cheapFindings, so the report says which bytes differ.
            let sink = ChunkCheckingSink(expected: sidecar[blob.fileIndex], chunkSize: checkpoint.manifest.chunkSize, size: blob.file.size, output: nil, progress: progress)
            // The sink refuses more bytes than the manifest says (an io error); reported below.
            let refused = await readThrough(blob.key, sink)
            if let refused, refused.kind != .io { throw refused }
            let (complete, bad) = sink.finish()
            result.bytesRead += blob.file.size
            if !bad.isEmpty || !complete {
                let ranges = bad.map { VerificationReport.ByteRange(start: $0.lowerBound, end: $0.upperBound) }
                var problem = complete ? "bytes differ from the manifest" : "the stored object is incomplete"
                if let cheapFindings { problem += "; \(cheapFindings)" }
                result.problems.append(ReplicaProblem(path: blob.file.path, problem: problem, ranges: ranges))
            } else if let cheapFindings {
                result.problems.append(ReplicaProblem(path: blob.file.path, problem: cheapFindings + ", though its bytes still match", ranges: []))
            }
        }
        return result
    }

    /// Reads an object into a sink, returning the error instead of throwing it.
    private func readThrough(_ key: String, _ sink: any BlobSink) async -> StoreError? {
        do {
            try await store.get(key, range: nil, into: sink)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Restore

    /// Brings a checkpoint committed on the store into `directory` (which must not exist yet),
    /// checking every chunk's SHA-256 while reading. Files are written under a temporary name
    /// beside `directory` and renamed into place only when all of them check out.
    public func restore(id: String, to directory: String) async throws -> RestoredCheckpoint {
        guard let marker = try? await store.getBytes(StoreLayout.commitMarker(id: id)), marker == Array(id.utf8) else {
            throw CheckpointError("\(store.url): checkpoint \(id.prefix(12)) is not committed on this store (no \(StoreLayout.commitMarker(id: id))); refusing to restore from it", storeCopyIsBad: true)
        }
        let manifestBytes = try await store.getBytes(StoreLayout.manifest(id: id))
        guard SHA256.hash(manifestBytes).hex == id else {
            throw CheckpointError("\(store.url): the stored manifest of \(id.prefix(12)) does not hash to its id", storeCopyIsBad: true)
        }
        let manifestJSON = String(decoding: manifestBytes, as: UTF8.self)
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.parse(manifestJSON)
        } catch {
            throw CheckpointError("\(store.url): \(error)", storeCopyIsBad: true)
        }
        let sidecar = try await store.getBytes(StoreLayout.sidecar(id: id))
        let digests: [[SHA256Digest]]
        do {
            digests = try ChunkSidecar.decode(sidecar, for: manifest)
        } catch {
            throw CheckpointError("\(store.url): \(error)", storeCopyIsBad: true)
        }
        // Now the size is known, a progress bar can show the fraction and the time left.
        if let progress, progress.total == 0 { progress.total = manifest.totalBytes }

        var info = stat()
        if lstat(directory, &info) == 0 { throw CheckpointError("\(directory) already exists; restore writes a new directory") }
        let staging = "\(directory).tern-restore-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var next = 0
                func startNext() throws {
                    guard next < manifest.files.count else { return }
                    let index = next
                    next += 1
                    let file = manifest.files[index]
                    let path = try CheckpointPath.join(staging, file.path)
                    group.addTask { try await restoreFile(file, to: path, expected: digests[index], chunkSize: manifest.chunkSize) }
                }
                for _ in 0..<min(parallelism, manifest.files.count) { try startNext() }
                while try await group.next() != nil { try startNext() }
            }
            guard rename(staging, directory) == 0 else {
                throw CheckpointError("cannot move the restored checkpoint into \(directory): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        return RestoredCheckpoint(id: id, manifest: manifest, manifestJSON: manifestJSON, sidecar: sidecar)
    }

    /// Downloads some of a checkpoint's files from this store into `directory` at their manifest
    /// paths, checking every chunk against the sidecar as it arrives: what a store-to-store copy
    /// needs of the files the destination lacks. The checkpoint must be committed here.
    public func fetch(files indexes: [Int], of checkpoint: SealedCheckpoint, into directory: String) async throws {
        guard let marker = try? await store.getBytes(StoreLayout.commitMarker(id: checkpoint.id)), marker == Array(checkpoint.id.utf8) else {
            throw CheckpointError("\(store.url): checkpoint \(checkpoint.id.prefix(12)) is not committed on this store; refusing to copy from it",
                                  storeCopyIsBad: true)
        }
        let digests = try decodeSidecar(checkpoint)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func startNext() throws {
                guard next < indexes.count else { return }
                let index = indexes[next]
                next += 1
                let file = checkpoint.manifest.files[index]
                let path = try CheckpointPath.join(directory, file.path)
                group.addTask { try await restoreFile(file, to: path, expected: digests[index], chunkSize: checkpoint.manifest.chunkSize) }
            }
            for _ in 0..<min(parallelism, indexes.count) { try startNext() }
            while try await group.next() != nil { try startNext() }
        }
    }

    private func restoreFile(_ file: ManifestFile, to path: String, expected: [SHA256Digest], chunkSize: Int64) async throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let sink = ChunkCheckingSink(expected: expected, chunkSize: chunkSize, size: file.size, output: fd, progress: progress)
        try await store.get(StoreLayout.blob(root: file.root), range: nil, into: sink)
        let (complete, bad) = sink.finish()
        guard complete, bad.isEmpty else {
            let ranges = bad.map { "bytes \($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", ")
            throw CheckpointError("\(store.url): \(file.path) does not match the manifest\(ranges.isEmpty ? " (incomplete)" : " at \(ranges)"); refusing to restore it", storeCopyIsBad: true)
        }
        guard fsync(fd) == 0 else { throw CheckpointError("cannot fsync \(path): \(String(cString: strerror(errno)))") }
    }

    // MARK: Demote

    /// Takes a checkpoint that failed verification out of use on the store: the commit marker goes,
    /// so no reader resumes from it, and the journal says `corrupt` with the reason.
    public func demote(_ checkpointID: String, journal: (any ReplicaJournal)?, reason: String) async throws {
        try await store.delete(StoreLayout.commitMarker(id: checkpointID))
        try await journal?.transition(to: .corrupt, level: nil, error: reason)
    }
}
