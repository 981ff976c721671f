import Foundation
@testable import TernCrypto
import Testing

/// The fused hasher against OpenSSL's SHA-256 and TernCrypto's CRC32C, on both of its paths.
struct SHA256WithCRC32CTests {
    typealias Implementation = SHA256WithCRC32C.Implementation

    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var sha256: String
        /// Where nil, the test compares with ``CRC32C`` over the same bytes.
        var crc32c: UInt32?
        var testDescription: String { name }
    }

    /// FIPS 180-4 examples (NIST's SHA-256 example values, including the one-million-"a" message)
    /// and CRC-32C values from the CRC catalogue check and an independent implementation.
    static let vectors: [Vector] = [
        Vector(name: "empty", bytes: [],
               sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", crc32c: 0),
        Vector(name: "abc", bytes: Array("abc".utf8),
               sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", crc32c: 0x364B_3FB7),
        Vector(name: "448-bit message", bytes: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
               sha256: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        Vector(name: "123456789", bytes: Array("123456789".utf8),
               sha256: "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225", crc32c: 0xE306_9283),
        Vector(name: "one million a", bytes: [UInt8](repeating: 0x61, count: 1_000_000),
               sha256: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ]

    @Test(arguments: Implementation.allCases, vectors)
    func knownVector(implementation: Implementation, vector: Vector) throws {
        let expected = try SHA256Digest(hex: vector.sha256)
        let expectedCRC = vector.crc32c ?? CRC32C.checksum(vector.bytes)
        #expect(SHA256.hash(vector.bytes) == expected)
        #expect(CRC32C.checksum(vector.bytes) == expectedCRC)

        var whole = SHA256WithCRC32C(implementation: implementation)
        whole.update(vector.bytes)
        let (digest, crc) = whole.finalize()
        #expect(digest == expected)
        #expect(crc == expectedCRC)

        if vector.bytes.count <= 1_000 {
            var bytewise = SHA256WithCRC32C(implementation: implementation)
            for byte in vector.bytes {
                bytewise.update([byte])
            }
            let (bytewiseDigest, bytewiseCRC) = bytewise.finalize()
            #expect(bytewiseDigest == expected && bytewiseCRC == expectedCRC, "one byte at a time")
        }
    }

    /// Every length from 0 to 300 (each padding case: tails of 0 to 63 bytes, one or two padding
    /// blocks), from misaligned starts, fed in random pieces.
    @Test(arguments: Implementation.allCases)
    func shortInputsInRandomPieces(implementation: Implementation) {
        var rng = SeededGenerator(seed: 0x5EA1)
        let buffer = rng.bytes(300 + 8)
        var mismatches: [String] = []
        for length in 0...300 {
            for start in [0, 1, 3, 7] {
                let data = Array(buffer[start..<(start + length)])
                let pieces = rng.splits(of: length, maxPiece: Int.random(in: 1...130, using: &rng))
                if !Self.matchesReference(data, pieces: pieces, implementation: implementation) {
                    mismatches.append("length \(length) start \(start) pieces \(pieces.map(\.count))")
                }
            }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(3))")
    }

    /// A few MiB, in pieces from a few bytes (partial blocks at every offset) to hundreds of KiB
    /// (the long fused runs HashingEngine makes).
    @Test(arguments: Implementation.allCases)
    func megabytesInRandomPieces(implementation: Implementation) {
        var rng = SeededGenerator(seed: 20_260_417)
        let data = rng.bytes(3 << 20 | 4_093)
        for maxPiece in [97, 4_096, 65_539, 1 << 20] {
            let pieces = rng.splits(of: data.count, maxPiece: maxPiece)
            // A local, so a failure does not print the 3 MiB argument.
            let matches = Self.matchesReference(data, pieces: pieces, implementation: implementation)
            #expect(matches, "pieces up to \(maxPiece) bytes")
        }
    }

    @Test func dataAndBufferInputs() {
        let bytes = Array("The quick brown fox jumps over the lazy dog".utf8)
        var hasher = SHA256WithCRC32C()
        hasher.update(Data(bytes[..<10]))
        bytes[10...].withUnsafeBytes { hasher.update($0) }
        hasher.update(UnsafeRawBufferPointer(start: nil, count: 0))
        let (digest, crc) = hasher.finalize()
        #expect(digest.description == "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592")
        #expect(crc == CRC32C.checksum(bytes))
    }

    /// Where /proc/cpuinfo says the CPU has SHA-NI, the automatic path must be the fused one,
    /// or the tests above would exercise the fallback twice.
    @Test func fusedWhereTheCPUHasSHANI() throws {
        #if arch(x86_64) && os(Linux)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ") ?? []
        #expect(SHA256WithCRC32C.isFused == (flags.contains("sha_ni") && flags.contains("sse4_2")))
        #else
        #expect(!SHA256WithCRC32C.isFused)
        #endif
    }

    /// Feeds `data` cut into `pieces` and compares with OpenSSL's SHA-256 and CRC32C of the whole.
    static func matchesReference(_ data: [UInt8], pieces: [Range<Int>], implementation: Implementation) -> Bool {
        var hasher = SHA256WithCRC32C(implementation: implementation)
        data.withUnsafeBytes { all in
            for piece in pieces {
                hasher.update(UnsafeRawBufferPointer(rebasing: all[piece]))
            }
        }
        let (digest, crc) = hasher.finalize()
        return digest == SHA256.hash(data) && crc == CRC32C.checksum(data)
    }
}
