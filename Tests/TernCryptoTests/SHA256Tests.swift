import Foundation
import TernCrypto
import Testing

struct SHA256Tests {
    /// FIPS 180-4 / NIST CAVP example messages.
    static let nistVectors: [(message: String, digest: String)] = [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        ),
    ]

    @Test(arguments: nistVectors)
    func nistVector(message: String, digest: String) {
        #expect(SHA256.hash(Array(message.utf8)).hex == digest)
        #expect(SHA256.hash(message).hex == digest)
        var hasher = SHA256()
        hasher.update(message)
        #expect(hasher.finalize().hex == digest)
    }

    @Test func oneMillionA() {
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        let message = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256.hash(message).hex == expected)
        // The same input fed in 1000-byte pieces.
        var hasher = SHA256()
        for _ in 0..<1000 {
            hasher.update(message[0..<1000])
        }
        #expect(hasher.finalize().hex == expected)
    }

    @Test(arguments: [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 4097, 70_001])
    func incrementalRandomSplitsMatchOneShot(length: Int) {
        var rng = SeededGenerator(seed: UInt64(length) &+ 1)
        let data = rng.bytes(length)
        let expected = SHA256.hash(data)
        for _ in 0..<5 {
            var hasher = SHA256()
            for range in rng.splits(of: data.count, maxPiece: 97) {
                hasher.update(data[range])
            }
            #expect(hasher.finalize() == expected)
        }
    }

    @Test func inputTypesAgree() {
        let text = "héllo, wörld — ✓"
        let bytes = Array(text.utf8)
        let expected = SHA256.hash(bytes)
        #expect(SHA256.hash(Data(bytes)) == expected)
        #expect(SHA256.hash(text) == expected)
        #expect(SHA256.hash(Substring("xx" + text).dropFirst(2)) == expected)
        #expect(bytes.withUnsafeBytes { SHA256.hash($0) } == expected)
        #expect(SHA256.hash(ContiguousArray(bytes)) == expected)
    }

    @Test func copyForksState() {
        var hasher = SHA256()
        hasher.update("abc")
        let fork = hasher.copy()
        hasher.update("def")
        #expect(fork.finalize() == SHA256.hash("abc"))
        #expect(hasher.finalize() == SHA256.hash("abcdef"))
    }

    @Test func fileHashingMatchesInMemoryAcrossChunkBoundaries() throws {
        var rng = SeededGenerator(seed: 42)
        let data = rng.bytes(3 * (1 << 20) + 12_345)
        let url = try temporaryFile(containing: data)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(try SHA256.hash(fileAt: url.path) == SHA256.hash(data))

        let empty = try temporaryFile(containing: [])
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(try SHA256.hash(fileAt: empty.path).hex == Self.nistVectors[0].digest)
    }

    @Test func missingFileThrowsFileIO() {
        let path = "/nonexistent/terncrypto/\(UUID().uuidString)"
        let error = #expect(throws: CryptoError.self) { try SHA256.hash(fileAt: path) }
        #expect(error?.code == .fileIO)
        #expect(error?.message.contains(path) == true)
    }

    @Test func concurrentHashingIsConsistent() async {
        let expected = SHA256.hash("abc")
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 {
                group.addTask { (0..<200).allSatisfy { _ in SHA256.hash("abc") == expected } }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 16)
        #expect(results.allSatisfy { $0 })
    }
}
