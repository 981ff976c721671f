public import Foundation
internal import CSHA256CRC32C

/// SHA-256 and CRC-32C of the same bytes, in one pass where the CPU allows.
///
/// Gives what ``SHA256`` and ``CRC32C`` give over the same input. On x86-64 CPUs with the SHA
/// extensions (SHA-NI) one loop computes both: the CRC32C instructions run alongside the SHA-256
/// rounds on another execution unit, so the checksum costs almost nothing on top of the hash.
/// Elsewhere it runs OpenSSL's SHA-256 and then ``CRC32C`` over each input.
///
/// ```swift
/// var hasher = SHA256WithCRC32C()
/// hasher.update(part1)
/// hasher.update(part2)
/// let (digest, crc32c) = hasher.finalize()
/// ```
/// Non-copyable like ``SHA256``; a hasher may move between tasks but is not shared while updating.
public struct SHA256WithCRC32C: ~Copyable, Sendable {
    /// Which code path computes the pair.
    enum Implementation: Hashable, Sendable, CaseIterable {
        /// The fused SHA-NI loop when the CPU has it, else ``separate``.
        case automatic
        /// OpenSSL's SHA-256, then ``CRC32C`` over the same bytes (the path on CPUs without SHA-NI).
        case separate
    }

    /// Whether this machine uses the fused loop (x86-64 with SHA-NI and SSE4.2).
    public static var isFused: Bool { tern_sha256_crc32c_available() != 0 }

    /// The fused state; untouched when `separate` is set.
    private var fused = tern_sha256_crc32c()
    /// OpenSSL's hasher when not fused.
    private var separate: SHA256?
    /// The checksum when not fused.
    private var crc = CRC32C()

    /// Starts a new, empty hash and checksum.
    public init() {
        self.init(implementation: .automatic)
    }

    /// Starts a new hash and checksum on the given path (tests force ``Implementation/separate``).
    init(implementation: Implementation) {
        if implementation == .automatic && Self.isFused {
            separate = nil
            tern_sha256_crc32c_init(&fused)
        } else {
            separate = SHA256()
        }
    }

    /// Feeds bytes (`[UInt8]`, `Data`, `UnsafeRawBufferPointer`, ...) into both.
    public mutating func update(_ data: some ContiguousBytes) {
        data.withUnsafeBytes { bytes in
            if separate == nil {
                tern_sha256_crc32c_update(&fused, bytes.baseAddress, bytes.count)
            } else {
                separate!.update(bytes)
                crc.update(bytes)
            }
        }
    }

    /// Finishes both and returns the SHA-256 digest and the CRC-32C, ending this hasher.
    public consuming func finalize() -> (digest: SHA256Digest, crc32c: UInt32) {
        if let hasher = separate.take() {
            return (hasher.finalize(), crc.value)
        }
        var checksum: UInt32 = 0
        let digest = SHA256Digest { out in
            checksum = tern_sha256_crc32c_final(&fused, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return (digest, checksum)
    }
}
