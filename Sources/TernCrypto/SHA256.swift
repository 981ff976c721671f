public import Foundation
internal import COpenSSL

/// SHA-256 (FIPS 180-4) over OpenSSL's EVP interface.
///
/// One-shot: `SHA256.hash(data)`. Incremental:
/// ```swift
/// var hasher = SHA256()
/// hasher.update(part1)
/// hasher.update(part2)
/// let digest = hasher.finalize()
/// ```
/// The type is non-copyable: it owns one OpenSSL `EVP_MD_CTX`, freed exactly once when the value
/// ends (after ``finalize()`` or when dropped). Use ``copy()`` to fork a running hash.
/// A hasher may be moved to another task; it is not meant to be shared between threads while updating.
public struct SHA256: ~Copyable, @unchecked Sendable {
    /// Digest length in bytes: 32.
    public static let byteCount = 32
    /// SHA-256 block length in bytes: 64.
    public static let blockByteCount = 64

    private let context: OpaquePointer

    /// Starts a new, empty hash.
    public init() {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("TernCrypto: EVP_MD_CTX_new failed (out of memory): \(OpenSSL.drainErrors())")
        }
        OpenSSL.check(EVP_DigestInit_ex2(context, OpenSSL.sha256, nil), "EVP_DigestInit_ex2(SHA256)")
        self.context = context
    }

    private init(adopting context: OpaquePointer) {
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Feeds bytes (`[UInt8]`, `Data`, `UnsafeRawBufferPointer`, ...) into the hash.
    public mutating func update(_ data: some ContiguousBytes) {
        data.withUnsafeBytes { absorb($0) }
    }

    /// Feeds the UTF-8 encoding of `string` into the hash.
    public mutating func update(_ string: some StringProtocol) {
        withUTF8(of: string) { absorb($0) }
    }

    /// Finishes the hash and returns the digest, ending this hasher.
    public consuming func finalize() -> SHA256Digest {
        SHA256Digest { out in
            var length: UInt32 = 0
            OpenSSL.check(
                EVP_DigestFinal_ex(context, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length),
                "EVP_DigestFinal_ex(SHA256)")
            precondition(length == UInt32(Self.byteCount), "SHA-256 produced \(length) bytes")
        }
    }

    /// An independent hasher with the same state, so one prefix can be finished several ways.
    public func copy() -> SHA256 {
        guard let copy = EVP_MD_CTX_new() else {
            fatalError("TernCrypto: EVP_MD_CTX_new failed (out of memory): \(OpenSSL.drainErrors())")
        }
        guard EVP_MD_CTX_copy_ex(copy, context) == 1 else {
            EVP_MD_CTX_free(copy)
            fatalError("TernCrypto: EVP_MD_CTX_copy_ex failed: \(OpenSSL.drainErrors())")
        }
        return SHA256(adopting: copy)
    }

    /// The SHA-256 digest of `data` in one call.
    public static func hash(_ data: some ContiguousBytes) -> SHA256Digest {
        data.withUnsafeBytes { oneShot($0) }
    }

    /// The SHA-256 digest of the UTF-8 encoding of `string`.
    public static func hash(_ string: some StringProtocol) -> SHA256Digest {
        withUTF8(of: string) { oneShot($0) }
    }

    /// The SHA-256 digest of a file's contents, read in 1 MiB chunks.
    ///
    /// - Throws: ``CryptoError`` `.fileIO` if the file cannot be opened or read.
    public static func hash(fileAt path: String) throws(CryptoError) -> SHA256Digest {
        let hasher = SHA256()
        try FileChunks.forEach(path: path) { hasher.absorb($0) }
        return hasher.finalize()
    }

    // MARK: - Internals

    private func absorb(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        OpenSSL.check(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count), "EVP_DigestUpdate(SHA256)")
    }

    private static func oneShot(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        withNonNullBase(bytes) { base, count in
            SHA256Digest { out in
                var length: UInt32 = 0
                OpenSSL.check(
                    EVP_Digest(base, count, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, OpenSSL.sha256, nil),
                    "EVP_Digest(SHA256)")
                precondition(length == UInt32(byteCount), "SHA-256 produced \(length) bytes")
            }
        }
    }
}

/// Calls `body` with the UTF-8 bytes of `string`, copying only if the string is not contiguous.
func withUTF8<R>(of string: some StringProtocol, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let result = string.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
        return result
    }
    var copy = String(string)
    return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}
