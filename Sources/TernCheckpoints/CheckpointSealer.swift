public import TernModel
internal import TernCrypto

/// A sealed checkpoint: its manifest, the manifest's exact bytes and id, and the chunk sidecar.
public struct SealedCheckpoint: Sendable {
    public var manifest: CheckpointManifest
    /// The canonical JSON the id is the hash of.
    public var manifestJSON: String
    public var id: String
    public var sidecar: [UInt8]
    /// The format whose signal said the directory is complete.
    public var format: JobSpec.CheckpointFormat

    public var totalBytes: Int64 { manifest.totalBytes }

    public init(manifest: CheckpointManifest, manifestJSON: String, sidecar: [UInt8], format: JobSpec.CheckpointFormat) {
        self.manifest = manifest
        self.manifestJSON = manifestJSON
        id = SHA256.hash(manifestJSON).hex
        self.sidecar = sidecar
        self.format = format
    }
}

/// Turns a complete step directory into a manifest. An incomplete directory is never sealed.
public struct CheckpointSealer: Sendable {
    public var engine: HashingEngine

    public init(engine: HashingEngine = HashingEngine()) { self.engine = engine }

    public func seal(directory: String, format: JobSpec.CheckpointFormat = .auto,
                     progress: (@Sendable (HashingProgress) -> Void)? = nil) async throws(CheckpointError) -> SealedCheckpoint {
        let markers: [String]
        let detected: JobSpec.CheckpointFormat
        switch Completeness.check(directory: directory, format: format) {
        case .incomplete(let reason):
            throw CheckpointError("\(directory) is not a complete checkpoint: \(reason)")
        case .complete(let found, let names):
            detected = found
            markers = names
        }
        let files = try DirectoryScan.files(in: directory)
        let digests = try await engine.hash(files: files, root: directory, progress: progress)
        return Self.assemble(digests, markers: Set(markers), chunkSize: engine.chunkSize, format: detected)
    }

    static func assemble(_ digests: [FileDigest], markers: Set<String>, chunkSize: Int64, format: JobSpec.CheckpointFormat) -> SealedCheckpoint {
        let sorted = digests.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        let sidecar = ChunkSidecar.encode(sorted.map(\.chunkDigests))
        let files = sorted.map { digest in
            ManifestFile(path: digest.path, size: digest.size, root: digest.root.hex, crc32c: hex8(digest.crc32c),
                         role: markers.contains(digest.path) ? .marker : .data)
        }
        let manifest = CheckpointManifest(chunkSize: chunkSize, files: files,
                                          chunks: SidecarReference(sha256: SHA256.hash(sidecar).hex, size: Int64(sidecar.count)))
        let json = manifest.canonicalJSON
        return SealedCheckpoint(manifest: manifest, manifestJSON: json, sidecar: sidecar, format: format)
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
