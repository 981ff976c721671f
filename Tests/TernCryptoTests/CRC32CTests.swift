import Foundation
import TernCrypto
import Testing

struct CRC32CTests {
    /// The CRC catalogue check value plus RFC 3720 (iSCSI) appendix B.4.
    static let vectors: [(name: String, bytes: [UInt8], crc: UInt32)] = [
        ("123456789", Array("123456789".utf8), 0xE306_9283),
        ("32 zero bytes", [UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ("32 0xFF bytes", [UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ("bytes 0...31 ascending", Array(0...31), 0x46DD_794E),
        ("bytes 31...0 descending", Array((0...31).reversed()), 0x113F_DB5C),
        ("empty", [], 0),
    ]

    @Test(arguments: vectors)
    func knownVector(name: String, bytes: [UInt8], crc: UInt32) {
        #expect(CRC32C.checksum(bytes) == crc, "\(name)")
        #expect(CRC32C.checksum(bytes, implementation: .portable) == crc, "\(name)")
        var running = CRC32C()
        for byte in bytes {
            running.update([byte])
        }
        #expect(running.value == crc, "\(name)")
    }

    @Test func stringAndDataInputs() {
        #expect(CRC32C.checksum("123456789") == 0xE306_9283)
        #expect(CRC32C.checksum(Data("123456789".utf8)) == 0xE306_9283)
        var crc = CRC32C()
        crc.update("1234")
        crc.update(Substring("56789"))
        #expect(crc.value == 0xE306_9283)
    }

    /// Lengths around the hardware path's 8-byte, 3x256-byte and 3x8192-byte block boundaries.
    static let lengths: [Int] = {
        var lengths = Array(0...80)
        for boundary in [768, 24_576] {
            lengths += (boundary - 9)...(boundary + 9)
        }
        lengths += [1000, 4096, 8191, 8192, 49_152, 49_153, 100_003, 262_144 + 17]
        return lengths
    }()

    @Test func hardwareMatchesPortableOverLengthsAndMisalignments() {
        var rng = SeededGenerator(seed: 2024)
        let buffer = rng.bytes(Self.lengths.max()! + 16)
        var mismatches: [String] = []
        for length in Self.lengths {
            for offset in 0..<16 {
                let slice = buffer[offset..<(offset + length)]
                let fast = CRC32C.checksum(slice)
                let portable = CRC32C.checksum(slice, implementation: .portable)
                if fast != portable {
                    mismatches.append("length \(length) offset \(offset)")
                }
            }
        }
        #expect(mismatches.count == 0, "first mismatches: \(mismatches.prefix(5))")
        #expect(Self.lengths.count > 100)
    }

    @Test func hardwareMatchesPortableOnRandomBuffers() {
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<200 {
            let length = Int.random(in: 0...70_000, using: &rng)
            let offset = Int.random(in: 0...7, using: &rng)
            let data = rng.bytes(length + offset)[offset...]
            #expect(CRC32C.checksum(data) == CRC32C.checksum(data, implementation: .portable))
        }
    }

    @Test func splitUpdatesMatchWhole() {
        var rng = SeededGenerator(seed: 5)
        let data = rng.bytes(100_000)
        let whole = CRC32C.checksum(data)
        for maxPiece in [1, 7, 100, 9000, 60_000] {
            var crc = CRC32C()
            for range in rng.splits(of: data.count, maxPiece: maxPiece) {
                crc.update(data[range])
            }
            #expect(crc.value == whole)
        }
        var resumed = CRC32C(resumingFrom: CRC32C.checksum(data[..<12_345]))
        resumed.update(data[12_345...])
        #expect(resumed.value == whole)
    }

    @Test func combineMatchesChecksumOfConcatenation() {
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<100 {
            let a = rng.bytes(Int.random(in: 0...3000, using: &rng))
            let b = rng.bytes(Int.random(in: 0...3000, using: &rng))
            let combined = CRC32C.combine(CRC32C.checksum(a), CRC32C.checksum(b), lengthOfSecond: b.count)
            #expect(combined == CRC32C.checksum(a + b))
        }
        // A long second part, and an empty one.
        let a = rng.bytes(10)
        let zeros = [UInt8](repeating: 0, count: 5 << 20)
        #expect(CRC32C.combine(CRC32C.checksum(a), CRC32C.checksum(zeros), lengthOfSecond: zeros.count)
            == CRC32C.checksum(a + zeros))
        #expect(CRC32C.combine(0x1234_5678, 0, lengthOfSecond: 0) == 0x1234_5678)
    }

    @Test func combineIsAssociativeForHugeLengths() {
        // Lengths too large to materialize exercise the x^(2^k) table beyond 2^32 bytes.
        let (a, b, c): (UInt32, UInt32, UInt32) = (0xDEAD_BEEF, 0x0123_4567, 0x89AB_CDEF)
        for (lb, lc) in [(1 << 33, 3), ((1 << 40) + 12_345, 1 << 41), (Int.max / 4, Int.max / 2)] {
            let left = CRC32C.combine(CRC32C.combine(a, b, lengthOfSecond: lb), c, lengthOfSecond: lc)
            let right = CRC32C.combine(a, CRC32C.combine(b, c, lengthOfSecond: lc), lengthOfSecond: lb + lc)
            #expect(left == right, "lb \(lb) lc \(lc)")
        }
        // Shifting by n then m bytes equals shifting by n + m.
        let n = 1 << 35, m = (1 << 50) + 7
        let twoSteps = CRC32C.combine(CRC32C.combine(a, 0, lengthOfSecond: n), 0, lengthOfSecond: m)
        #expect(twoSteps == CRC32C.combine(a, 0, lengthOfSecond: n + m))
        #expect(twoSteps != a)
    }

    @Test func base64HeaderForm() throws {
        var crc = CRC32C()
        crc.update(Array("123456789".utf8))
        #expect(crc.base64Encoded == "4waSgw==")
        #expect(CRC32C.base64Encoded(0) == "AAAAAA==")
        #expect(try CRC32C.value(base64Encoded: "4waSgw==") == 0xE306_9283)
        #expect(try CRC32C.value(base64Encoded: CRC32C.base64Encoded(0x0102_0304)) == 0x0102_0304)

        let short = #expect(throws: CryptoError.self) { try CRC32C.value(base64Encoded: "AAA=") }
        #expect(short?.code == .invalidLength)
        let garbage = #expect(throws: CryptoError.self) { try CRC32C.value(base64Encoded: "4waS!w==") }
        #expect(garbage?.code == .invalidBase64)
    }

    @Test func fileChecksumMatchesInMemory() throws {
        var rng = SeededGenerator(seed: 3)
        let data = rng.bytes(2 * (1 << 20) + 777)
        let url = try temporaryFile(containing: data)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(try CRC32C.checksum(fileAt: url.path) == CRC32C.checksum(data))
        let error = #expect(throws: CryptoError.self) { try CRC32C.checksum(fileAt: url.path + ".missing") }
        #expect(error?.code == .fileIO)
    }

    #if arch(x86_64) && os(Linux)
    @Test func hardwareFlagMatchesCPU() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        #expect(CRC32C.isHardwareAccelerated == cpuinfo.contains("sse4_2"))
    }
    #endif
}
