public import Foundation
import TernCrypto

/// The CRC-64 Azure Storage checks uploads with (`x-ms-content-crc64`): the reflected polynomial
/// 0x9A6C9329AC4BC9B5 with all-ones initial value and final inversion, as the Azure Storage SDKs
/// compute it. The header carries the 8 bytes little-endian in standard base64.
///
/// Azure keeps no CRC32C, so Tern sends this per request (each Put Blob and Put Block) and the
/// service refuses a body whose bytes do not match (`Crc64Mismatch`).
public struct AzureCRC64: Hashable, Sendable {
    /// The checksum of everything fed so far (0 before any input).
    public private(set) var value: UInt64

    public init() {
        value = 0
    }

    /// Continues from `value`, the checksum of data already processed.
    public init(resumingFrom value: UInt64) {
        self.value = value
    }

    public mutating func update(_ bytes: some ContiguousBytes) {
        value = bytes.withUnsafeBytes { Self.update(value, $0) }
    }

    /// The CRC-64 of `bytes`.
    public static func checksum(_ bytes: some ContiguousBytes) -> UInt64 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// The `x-ms-content-crc64` header form: 8 bytes little-endian, standard base64.
    public static func base64Encoded(_ crc: UInt64) -> String {
        Base64.encode((0..<8).map { UInt8(truncatingIfNeeded: crc >> (8 * $0)) })
    }

    static let polynomial: UInt64 = 0x9A6C_9329_AC4B_C9B5

    /// Slicing-by-8, flattened: entry `k * 256 + b` is the CRC of byte `b` followed by `k` zero bytes.
    private static let table: [UInt64] = {
        var table = [UInt64](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt64(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ polynomial : crc >> 1 }
            table[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(k - 1) * 256 + byte]
                table[k * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return table
    }()

    static func update(_ crc: UInt64, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return crc }
        let count = bytes.count
        return table.withUnsafeBufferPointer { t in
            var state = ~crc
            var index = 0
            while count - index >= 8 {
                let word = state ^ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                state = t[7 * 256 + Int(word & 0xFF)] ^ t[6 * 256 + Int((word >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xFF)] ^ t[4 * 256 + Int((word >> 24) & 0xFF)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xFF)] ^ t[2 * 256 + Int((word >> 40) & 0xFF)]
                    ^ t[256 + Int((word >> 48) & 0xFF)] ^ t[Int(word >> 56)]
                index += 8
            }
            while index < count {
                state = (state >> 8) ^ t[Int((state ^ UInt64(base.load(fromByteOffset: index, as: UInt8.self))) & 0xFF)]
                index += 1
            }
            return ~state
        }
    }
}
