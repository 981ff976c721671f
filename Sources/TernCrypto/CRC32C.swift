public import Foundation
internal import CCRC32C

/// CRC-32C (Castagnoli), the checksum S3 and GCS use for object integrity.
///
/// Uses the CPU's CRC32C instruction (SSE4.2 on x86-64, the CRC extension on arm64) when present,
/// otherwise a slicing-by-8 table. Values chain: `CRC32C.checksum(a + b)` equals a checksum updated
/// with `a` then `b`, and ``combine(_:_:lengthOfSecond:)`` joins checksums of adjacent parts
/// computed separately (for example in parallel).
///
/// ```swift
/// var crc = CRC32C()
/// crc.update(chunk1)
/// crc.update(chunk2)
/// request.setValue(crc.base64Encoded, forHTTPHeaderField: "x-amz-checksum-crc32c")
/// ```
public struct CRC32C: Hashable, Sendable {
    /// Which code path computes a checksum.
    public enum Implementation: Hashable, Sendable {
        /// The hardware instruction when the CPU has it, else the portable table.
        case automatic
        /// Always the portable slicing-by-8 table (for testing and comparison).
        case portable
    }

    /// The checksum of everything fed so far (0 before any input).
    public private(set) var value: UInt32

    /// Starts a new checksum (value 0).
    public init() {
        value = 0
    }

    /// Continues from `value`, the checksum of data already processed.
    public init(resumingFrom value: UInt32) {
        self.value = value
    }

    /// Feeds bytes (`[UInt8]`, `Data`, `UnsafeRawBufferPointer`, ...) into the checksum.
    public mutating func update(_ bytes: some ContiguousBytes) {
        value = bytes.withUnsafeBytes { Self.update(value, $0, .automatic) }
    }

    /// Feeds the UTF-8 encoding of `string` into the checksum.
    public mutating func update(_ string: some StringProtocol) {
        value = withUTF8(of: string) { Self.update(value, $0, .automatic) }
    }

    /// The checksum as object-store headers carry it: the 4 bytes big-endian, standard base64 (8 characters).
    public var base64Encoded: String { Self.base64Encoded(value) }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: some ContiguousBytes, implementation: Implementation = .automatic) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0, implementation) }
    }

    /// The CRC-32C of the UTF-8 encoding of `string`.
    public static func checksum(_ string: some StringProtocol) -> UInt32 {
        withUTF8(of: string) { update(0, $0, .automatic) }
    }

    /// The CRC-32C of a file's contents, read in 1 MiB chunks.
    ///
    /// - Throws: ``CryptoError`` `.fileIO` if the file cannot be opened or read.
    public static func checksum(fileAt path: String) throws(CryptoError) -> UInt32 {
        var crc: UInt32 = 0
        try FileChunks.forEach(path: path) { crc = update(crc, $0, .automatic) }
        return crc
    }

    /// The checksum of `A || B` from `first = crc(A)`, `second = crc(B)` and `lengthOfSecond = B.count`,
    /// in O(log length) time without the data.
    public static func combine(_ first: UInt32, _ second: UInt32, lengthOfSecond: Int) -> UInt32 {
        precondition(lengthOfSecond >= 0, "CRC32C.combine: lengthOfSecond must not be negative")
        return tern_crc32c_combine(first, second, UInt64(lengthOfSecond))
    }

    /// Whether checksums use a hardware CRC32C instruction on this machine.
    public static var isHardwareAccelerated: Bool { tern_crc32c_hardware() != 0 }

    /// `crc` as 4 big-endian bytes in standard base64, the form of S3's `x-amz-checksum-crc32c`
    /// and GCS's `x-goog-hash: crc32c=...` headers.
    public static func base64Encoded(_ crc: UInt32) -> String {
        Base64.encode(bigEndianBytes(crc))
    }

    /// Parses the base64 header form back into a checksum value.
    ///
    /// - Throws: ``CryptoError`` `.invalidBase64` for malformed base64, `.invalidLength` if it does not hold 4 bytes.
    public static func value(base64Encoded text: some StringProtocol) throws(CryptoError) -> UInt32 {
        let bytes = try Base64.decode(text)
        guard bytes.count == 4 else {
            throw CryptoError(.invalidLength, "a base64 CRC32C holds 4 bytes, \"\(text)\" holds \(bytes.count)")
        }
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func bigEndianBytes(_ crc: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: crc >> 24), UInt8(truncatingIfNeeded: crc >> 16),
         UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)]
    }

    private static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer, _ implementation: Implementation) -> UInt32 {
        switch implementation {
        case .automatic: tern_crc32c_update(crc, bytes.baseAddress, bytes.count)
        case .portable: tern_crc32c_update_portable(crc, bytes.baseAddress, bytes.count)
        }
    }
}
