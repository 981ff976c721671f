public import Foundation

/// A 32-byte SHA-256 digest (also the HMAC-SHA256 tag).
///
/// Equality compares all 32 bytes without an early exit, so `==` does not leak where two
/// digests differ. Encodes (`Codable`) and prints as 64 lowercase hex digits.
public struct SHA256Digest: Hashable, Sendable, Codable, CustomStringConvertible, ContiguousBytes {
    /// Number of bytes in a digest: 32.
    public static let byteCount = 32

    /// The digest bytes, in order, held as four words in memory order.
    private var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// Creates a digest whose 32 bytes are written by `fill`.
    init(unsafeFill fill: (UnsafeMutableRawBufferPointer) -> Void) {
        Swift.withUnsafeMutableBytes(of: &storage, fill)
    }

    /// Creates a digest from exactly 32 bytes.
    ///
    /// - Throws: ``CryptoError`` `.invalidLength` if `bytes` does not hold exactly 32 bytes.
    public init(bytes: some Sequence<UInt8>) throws(CryptoError) {
        let array = Array(bytes)
        guard array.count == Self.byteCount else {
            throw CryptoError(.invalidLength, "a SHA-256 digest is 32 bytes, got \(array.count)")
        }
        self.init { $0.copyBytes(from: array) }
    }

    /// Creates a digest from 64 hex digits (either case).
    ///
    /// - Throws: ``CryptoError`` `.invalidHex` for non-hex input, `.invalidLength` if it is not 64 digits.
    public init(hex: some StringProtocol) throws(CryptoError) {
        let bytes = try Hex.decode(hex)
        guard bytes.count == Self.byteCount else {
            throw CryptoError(
                .invalidLength, "a SHA-256 digest is 64 hex digits, got \(bytes.count * 2)")
        }
        try self.init(bytes: bytes)
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The digest as 64 lowercase hex digits.
    public var hex: String {
        withUnsafeBytes { Hex.encode(buffer: $0.assumingMemoryBound(to: UInt8.self)) }
    }

    /// Same as ``hex``.
    public var description: String { hex }

    /// Calls `body` with the 32 digest bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage, body)
    }

    /// Compares all 32 bytes without branching on the data.
    public static func == (lhs: SHA256Digest, rhs: SHA256Digest) -> Bool {
        let difference = (lhs.storage.0 ^ rhs.storage.0) | (lhs.storage.1 ^ rhs.storage.1)
            | (lhs.storage.2 ^ rhs.storage.2) | (lhs.storage.3 ^ rhs.storage.3)
        return difference == 0
    }

    /// Hashes the 32 digest bytes.
    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// Decodes from a 64-digit hex string.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do throws(CryptoError) {
            try self.init(hex: text)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "invalid SHA-256 digest \"\(text)\": \(error.message)")
        }
    }

    /// Encodes as a 64-digit lowercase hex string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
