internal import TernModel
internal import TernCrypto

/// What a file is for in a checkpoint, which decides the order files are committed to a store:
/// data first, framework markers last (a reader that sees the marker sees everything else).
public enum FileRole: String, Sendable, Hashable, Codable, CaseIterable {
    case data
    /// A completion marker inside the step directory: `TERN_COMPLETE`, `.metadata` (torch DCP),
    /// `commit_success.txt` (Orbax).
    case marker
    /// A file outside the step directory that points at it (Megatron's tracker, DeepSpeed's `latest`).
    case pointer
}

/// One file of a checkpoint as the manifest records it.
public struct ManifestFile: Sendable, Hashable, Codable {
    /// Relative to the step directory, `/`-separated, NFC, no `.`/`..`/empty components.
    public var path: String
    public var size: Int64
    /// SHA-256 over the file's chunk digests, domain-separated (see ``FileRoot``), lower-case hex.
    public var root: String
    /// CRC32C of the whole file, 8 lower-case hex digits (what stores such as GCS and S3 check).
    public var crc32c: String
    public var role: FileRole

    public init(path: String, size: Int64, root: String, crc32c: String, role: FileRole) {
        self.path = path
        self.size = size
        self.root = root
        self.crc32c = crc32c
        self.role = role
    }
}

/// The binary sidecar holding every chunk digest: named by its SHA-256 and size in the manifest.
public struct SidecarReference: Sendable, Hashable, Codable {
    public var sha256: String
    public var size: Int64

    public init(sha256: String, size: Int64) {
        self.sha256 = sha256
        self.size = size
    }
}

/// A sealed checkpoint's manifest (`tern-manifest/v1`).
///
/// Written as canonical JSON (sorted keys, no insignificant whitespace, see ``JSONValue``); the
/// checkpoint id is the SHA-256 of exactly those bytes. Only facts about the bytes are in it —
/// no host names, times or store details — so sealing the same bytes twice gives the same id.
public struct CheckpointManifest: Sendable, Hashable, Codable {
    public static let currentFormat = "tern-manifest/v1"
    /// 64 MiB: large enough that per-chunk overhead vanishes, small enough that a bad range is
    /// found without re-reading a whole multi-gigabyte shard, and that chunks hash in parallel.
    public static let defaultChunkSize: Int64 = 64 << 20

    public var format: String
    public var chunkSize: Int64
    /// Sorted by the UTF-8 bytes of `path`.
    public var files: [ManifestFile]
    public var chunks: SidecarReference

    enum CodingKeys: String, CodingKey {
        case format, files, chunks
        case chunkSize = "chunk_size"
    }

    public init(chunkSize: Int64 = Self.defaultChunkSize, files: [ManifestFile], chunks: SidecarReference) {
        self.format = Self.currentFormat
        self.chunkSize = chunkSize
        self.files = files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        self.chunks = chunks
    }

    /// The exact bytes the id is computed over.
    public var canonicalJSON: String { CanonicalJSON.string(of: self) }

    /// The checkpoint id: lower-case hex SHA-256 of ``canonicalJSON``.
    public var id: String { SHA256.hash(canonicalJSON).hex }

    public var totalBytes: Int64 { files.reduce(0) { $0 + $1.size } }

    /// How many chunks a file of `size` bytes has (an empty file has none).
    public func chunkCount(ofSize size: Int64) -> Int { Int((size + chunkSize - 1) / chunkSize) }

    /// Total chunks across all files: the number of digests in the sidecar.
    public var totalChunks: Int { files.reduce(0) { $0 + chunkCount(ofSize: $1.size) } }

    /// Reads and checks a manifest: its format, chunk size, paths and hashes are all validated, so
    /// a hostile or damaged manifest cannot name a file outside its directory.
    public static func parse(_ text: String) throws(ManifestError) -> CheckpointManifest {
        let manifest: CheckpointManifest
        do {
            manifest = try CanonicalJSON.decode(CheckpointManifest.self, from: text)
        } catch {
            throw ManifestError("is not a tern manifest: \(error)")
        }
        guard manifest.format == currentFormat else {
            throw ManifestError("has format \"\(manifest.format)\"; this Tern reads \(currentFormat)")
        }
        guard manifest.chunkSize >= 1 << 20, manifest.chunkSize <= 1 << 32 else {
            throw ManifestError("has chunk_size \(manifest.chunkSize); expected 1 MiB to 4 GiB")
        }
        var seen = Set<String>()
        var previous: String?
        for file in manifest.files {
            try CheckpointPath.validate(file.path)
            guard seen.insert(file.path).inserted else { throw ManifestError("lists \"\(file.path)\" twice") }
            if let previous, !previous.utf8.lexicographicallyPrecedes(file.path.utf8) {
                throw ManifestError("is not in canonical form: \"\(file.path)\" comes after \"\(previous)\" (files are sorted by the UTF-8 bytes of their paths)")
            }
            previous = file.path
            guard file.size >= 0 else { throw ManifestError("gives \"\(file.path)\" a negative size") }
            // Exactly lower-case ASCII hex: Character.isHexDigit also accepts upper case and
            // full-width digits, which would never compare equal to a digest we compute.
            guard isLowerHex(file.root, count: 64) else { throw ManifestError("gives \"\(file.path)\" a malformed root") }
            guard isLowerHex(file.crc32c, count: 8) else { throw ManifestError("gives \"\(file.path)\" a malformed crc32c") }
        }
        guard isLowerHex(manifest.chunks.sha256, count: 64) else { throw ManifestError("names its chunk sidecar by a malformed sha256") }
        guard manifest.chunks.size == ChunkSidecar.byteCount(chunks: manifest.totalChunks) else {
            throw ManifestError("names a chunk sidecar of \(manifest.chunks.size) bytes; its files need \(ChunkSidecar.byteCount(chunks: manifest.totalChunks))")
        }
        // Re-encoding must give the same bytes, or the id would not be the hash of this text.
        // Compared byte for byte: String's == treats canonically equivalent text as equal.
        guard manifest.canonicalJSON.utf8.elementsEqual(text.trimmingTrailingNewline.utf8) else {
            throw ManifestError("is not in canonical form (keys sorted, no spaces, files sorted by path); its id would be ambiguous")
        }
        return manifest
    }
}

/// Whether `text` is exactly `count` lower-case ASCII hex digits.
func isLowerHex(_ text: String, count: Int) -> Bool {
    text.utf8.count == count && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
}

/// A manifest that cannot be trusted, and why.
public struct ManifestError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "the manifest \(reason)" }
}

extension String {
    var trimmingTrailingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
