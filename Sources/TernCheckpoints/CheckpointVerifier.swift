internal import TernCrypto

/// What differs between a directory and a manifest.
public struct VerificationReport: Sendable, Encodable {
    public struct ChangedFile: Sendable, Codable, Hashable {
        public var path: String
        /// Byte ranges `[start, end)` whose chunk digests differ; empty when no sidecar was given.
        public var ranges: [ByteRange]
    }

    public struct Resized: Sendable, Codable, Hashable {
        public var path: String
        public var expected: Int64
        public var found: Int64
    }

    public struct ByteRange: Sendable, Codable, Hashable, CustomStringConvertible {
        public var start: Int64
        public var end: Int64
        public var description: String { "bytes \(start)..<\(end)" }
    }

    public var checkpointID: String
    public var missing: [String] = []
    public var extra: [String] = []
    public var resized: [Resized] = []
    public var changed: [ChangedFile] = []
    public var filesChecked = 0
    public var bytesChecked: Int64 = 0

    public var isIdentical: Bool { missing.isEmpty && extra.isEmpty && resized.isEmpty && changed.isEmpty }

    enum CodingKeys: String, CodingKey {
        case missing, extra, resized, changed
        case checkpointID = "checkpoint_id"
        case filesChecked = "files_checked"
        case bytesChecked = "bytes_checked"
        case isIdentical = "identical"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(checkpointID, forKey: .checkpointID)
        try container.encode(missing, forKey: .missing)
        try container.encode(extra, forKey: .extra)
        try container.encode(resized, forKey: .resized)
        try container.encode(changed, forKey: .changed)
        try container.encode(filesChecked, forKey: .filesChecked)
        try container.encode(bytesChecked, forKey: .bytesChecked)
        try container.encode(isIdentical, forKey: .isIdentical)
    }
}

/// Re-reads a directory and compares it with a manifest: every file hashed again, every chunk
/// compared, so a changed file is reported with the exact 64 MiB ranges that differ.
public struct CheckpointVerifier: Sendable {
    public var engine: HashingEngine

    public init(engine: HashingEngine = HashingEngine()) { self.engine = engine }

    /// `sidecar` (the chunk digests) locates changed ranges; without it a changed file is reported whole.
    public func verify(directory: String, manifest: CheckpointManifest, sidecar: [UInt8]?,
                       progress: (@Sendable (HashingProgress) -> Void)? = nil) async throws(CheckpointError) -> VerificationReport {
        var report = VerificationReport(checkpointID: manifest.id)
        let expectedChunks: [[SHA256Digest]]?
        do {
            expectedChunks = try sidecar.map { bytes throws(ManifestError) in try ChunkSidecar.decode(bytes, for: manifest) }
        } catch {
            throw CheckpointError("\(error)")
        }
        let found = try DirectoryScan.files(in: directory)
        let foundByPath = Dictionary(uniqueKeysWithValues: found.map { ($0.path, $0) })
        let expectedPaths = Set(manifest.files.map(\.path))
        report.extra = found.map(\.path).filter { !expectedPaths.contains($0) }
        var toHash: [ScannedFile] = []
        var expectedFor: [String: (file: ManifestFile, chunks: [SHA256Digest]?)] = [:]
        for (index, file) in manifest.files.enumerated() {
            guard let onDisk = foundByPath[file.path] else {
                report.missing.append(file.path)
                continue
            }
            if onDisk.size != file.size {
                report.resized.append(.init(path: file.path, expected: file.size, found: onDisk.size))
                continue
            }
            toHash.append(onDisk)
            expectedFor[file.path] = (file, expectedChunks?[index])
        }
        if manifest.chunkSize != engine.chunkSize {
            var adjusted = engine
            adjusted.chunkSize = manifest.chunkSize
            return try await finish(report, adjusted, toHash, directory, expectedFor, manifest.chunkSize, progress)
        }
        return try await finish(report, engine, toHash, directory, expectedFor, manifest.chunkSize, progress)
    }

    private func finish(_ report: VerificationReport, _ engine: HashingEngine, _ files: [ScannedFile], _ directory: String,
                        _ expected: [String: (file: ManifestFile, chunks: [SHA256Digest]?)], _ chunkSize: Int64,
                        _ progress: (@Sendable (HashingProgress) -> Void)?) async throws(CheckpointError) -> VerificationReport {
        var report = report
        let digests = try await engine.hash(files: files, root: directory, progress: progress)
        for digest in digests {
            guard let (file, chunks) = expected[digest.path] else { continue }
            report.filesChecked += 1
            report.bytesChecked += digest.size
            if digest.root.hex == file.root && CheckpointSealer.hex8(digest.crc32c) == file.crc32c { continue }
            var ranges: [VerificationReport.ByteRange] = []
            if let chunks {
                for (index, (ours, theirs)) in zip(digest.chunkDigests, chunks).enumerated() where ours != theirs {
                    let start = Int64(index) * chunkSize
                    ranges.append(.init(start: start, end: min(start + chunkSize, digest.size)))
                }
            }
            report.changed.append(.init(path: digest.path, ranges: ranges))
        }
        return report
    }
}

/// How two manifests differ, and how many bytes of the second are already present in the first
/// (files whose root the first has, under any name: those never need to move).
public struct CheckpointDiff: Sendable, Codable {
    public var identical: [String] = []
    public var changed: [String] = []
    public var added: [String] = []
    public var removed: [String] = []
    /// Bytes of B that match a file of A by root (dedup: they need not be copied).
    public var bytesAlreadyPresent: Int64 = 0
    /// Bytes of B that would have to move.
    public var bytesToMove: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case identical, changed, added, removed
        case bytesAlreadyPresent = "bytes_already_present"
        case bytesToMove = "bytes_to_move"
    }

    public init(from a: CheckpointManifest, to b: CheckpointManifest) {
        // A manifest built in code (not parsed) may list a path twice: keep the first, never trap.
        let aByPath = Dictionary(a.files.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        let bPaths = Set(b.files.map(\.path))
        let aRoots = Set(a.files.map(\.root))
        for file in b.files {
            if let old = aByPath[file.path] {
                if old.root == file.root && old.size == file.size { identical.append(file.path) } else { changed.append(file.path) }
            } else {
                added.append(file.path)
            }
            if aRoots.contains(file.root) { bytesAlreadyPresent += file.size } else { bytesToMove += file.size }
        }
        removed = a.files.map(\.path).filter { !bPaths.contains($0) }
    }
}
