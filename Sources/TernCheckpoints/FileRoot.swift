internal import Foundation
public import TernCrypto

/// How chunk digests become a file's `root` and how they are stored in the sidecar.
///
/// A chunk digest is the plain SHA-256 of the chunk's bytes, so any range can be checked with
/// ordinary tools (`dd … | sha256sum`). The root hashes a domain tag, the file size and chunk size,
/// then the chunk digests in order: the tag keeps a root from ever equalling the hash of some
/// file's content, and the sizes make a root name exactly one chunking of one length.
public enum FileRoot {
    static let domain = Array("tern-file-root/v1\0".utf8)

    public static func root(size: Int64, chunkSize: Int64, chunkDigests: [SHA256Digest]) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(domain)
        hasher.update(bigEndian(UInt64(size)))
        hasher.update(bigEndian(UInt64(chunkSize)))
        for digest in chunkDigests { hasher.update(digest) }
        return hasher.finalize()
    }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }
}

/// The binary file of chunk digests: `TERNCHK1`, the chunk count as a big-endian UInt64, then the
/// 32-byte digests of every file's chunks, files in manifest order.
public enum ChunkSidecar {
    static let magic = Array("TERNCHK1".utf8)

    public static func byteCount(chunks: Int) -> Int64 { Int64(16 + 32 * chunks) }

    public static func encode(_ digests: [[SHA256Digest]]) -> [UInt8] {
        let count = digests.reduce(0) { $0 + $1.count }
        var bytes = magic + FileRoot.bigEndian(UInt64(count))
        bytes.reserveCapacity(16 + 32 * count)
        for file in digests {
            for digest in file { digest.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        }
        return bytes
    }

    /// The chunk digests per manifest file, after checking the sidecar is the one the manifest names.
    public static func decode(_ bytes: [UInt8], for manifest: CheckpointManifest) throws(ManifestError) -> [[SHA256Digest]] {
        guard Int64(bytes.count) == manifest.chunks.size, SHA256.hash(bytes).hex == manifest.chunks.sha256 else {
            throw ManifestError("names a chunk sidecar with SHA-256 \(manifest.chunks.sha256) and \(manifest.chunks.size) bytes; the one given (\(bytes.count) bytes) is not it")
        }
        guard bytes.count >= 16, Array(bytes.prefix(8)) == magic else { throw ManifestError("has a chunk sidecar without the TERNCHK1 header") }
        let count = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard count == UInt64(manifest.totalChunks), Int64(bytes.count) == byteCount(chunks: manifest.totalChunks) else {
            throw ManifestError("has a chunk sidecar holding \(count) digests in \(bytes.count) bytes; its files have \(manifest.totalChunks) chunks")
        }
        var offset = 16
        var result: [[SHA256Digest]] = []
        for file in manifest.files {
            var digests: [SHA256Digest] = []
            for _ in 0..<manifest.chunkCount(ofSize: file.size) {
                guard offset + 32 <= bytes.count, let digest = try? SHA256Digest(bytes: bytes[offset..<offset + 32]) else {
                    throw ManifestError("has a chunk sidecar that ends early")
                }
                digests.append(digest)
                offset += 32
            }
            result.append(digests)
        }
        return result
    }
}
