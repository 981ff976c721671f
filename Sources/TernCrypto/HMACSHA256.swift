public import Foundation
internal import COpenSSL

/// HMAC-SHA256 (RFC 2104) over OpenSSL 3's `EVP_MAC` interface.
///
/// One-shot: `HMACSHA256.authenticate(message: m, key: k)`. Incremental:
/// ```swift
/// var mac = HMACSHA256(key: key)
/// mac.update(part1)
/// mac.update(part2)
/// let tag = mac.finalize()
/// ```
/// Non-copyable: it owns one `EVP_MAC_CTX`, freed exactly once. Check received tags with
/// ``verify(_:message:key:)`` (constant time), not by comparing hex strings.
public struct HMACSHA256: ~Copyable, @unchecked Sendable {
    /// Tag length in bytes: 32.
    public static let byteCount = 32

    private let context: OpaquePointer

    /// Starts a MAC keyed with `key` (any length; an empty key is allowed).
    public init(key: some ContiguousBytes) {
        guard let context = EVP_MAC_CTX_new(OpenSSL.hmac) else {
            fatalError("TernCrypto: EVP_MAC_CTX_new failed (out of memory): \(OpenSSL.drainErrors())")
        }
        let status = key.withUnsafeBytes { keyBytes in
            withNonNullBase(keyBytes) { base, count in
                EVP_MAC_init(context, base, count, OpenSSL.hmacSHA256Params)
            }
        }
        if status != 1 {
            EVP_MAC_CTX_free(context)
            fatalError("TernCrypto: EVP_MAC_init(HMAC-SHA256) failed: \(OpenSSL.drainErrors())")
        }
        self.context = context
    }

    private init(adopting context: OpaquePointer) {
        self.context = context
    }

    deinit {
        EVP_MAC_CTX_free(context)
    }

    /// Feeds message bytes into the MAC.
    public mutating func update(_ data: some ContiguousBytes) {
        data.withUnsafeBytes { absorb($0) }
    }

    /// Feeds the UTF-8 encoding of `string` into the MAC.
    public mutating func update(_ string: some StringProtocol) {
        withUTF8(of: string) { absorb($0) }
    }

    /// Finishes and returns the 32-byte tag, ending this MAC.
    public consuming func finalize() -> SHA256Digest {
        SHA256Digest { out in
            var length = 0
            OpenSSL.check(
                EVP_MAC_final(context, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, out.count),
                "EVP_MAC_final(HMAC-SHA256)")
            precondition(length == Self.byteCount, "HMAC-SHA256 produced \(length) bytes")
        }
    }

    /// An independent MAC with the same key and state.
    public func copy() -> HMACSHA256 {
        guard let copy = EVP_MAC_CTX_dup(context) else {
            fatalError("TernCrypto: EVP_MAC_CTX_dup failed: \(OpenSSL.drainErrors())")
        }
        return HMACSHA256(adopting: copy)
    }

    /// The HMAC-SHA256 tag of `message` under `key`.
    public static func authenticate(message: some ContiguousBytes, key: some ContiguousBytes) -> SHA256Digest {
        var mac = HMACSHA256(key: key)
        mac.update(message)
        return mac.finalize()
    }

    /// The HMAC-SHA256 tag of the UTF-8 encoding of `message` under `key`.
    public static func authenticate(message: some StringProtocol, key: some ContiguousBytes) -> SHA256Digest {
        var mac = HMACSHA256(key: key)
        mac.update(message)
        return mac.finalize()
    }

    /// Whether `tag` is the full 32-byte HMAC-SHA256 of `message` under `key`, compared in constant time.
    /// A tag of any other length is rejected.
    public static func verify(_ tag: some ContiguousBytes, message: some ContiguousBytes, key: some ContiguousBytes) -> Bool {
        constantTimeEquals(authenticate(message: message, key: key), tag)
    }

    private func absorb(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        OpenSSL.check(
            EVP_MAC_update(context, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count),
            "EVP_MAC_update(HMAC-SHA256)")
    }
}
