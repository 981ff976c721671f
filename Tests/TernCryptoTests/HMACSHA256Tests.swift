import Foundation
import TernCrypto
import Testing

struct HMACSHA256Tests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var key: [UInt8]
        var message: [UInt8]
        /// Expected tag; RFC 4231 case 5 gives only the first 128 bits.
        var tagHex: String
        var testDescription: String { name }
    }

    /// RFC 4231 §4.2–4.8.
    static let rfc4231: [Vector] = [
        Vector(
            name: "case 1", key: [UInt8](repeating: 0x0B, count: 20), message: Array("Hi There".utf8),
            tagHex: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        Vector(
            name: "case 2", key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8),
            tagHex: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        Vector(
            name: "case 3", key: [UInt8](repeating: 0xAA, count: 20), message: [UInt8](repeating: 0xDD, count: 50),
            tagHex: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        Vector(
            name: "case 4", key: Array(1...25), message: [UInt8](repeating: 0xCD, count: 50),
            tagHex: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        Vector(
            name: "case 5 (truncated to 128 bits)", key: [UInt8](repeating: 0x0C, count: 20),
            message: Array("Test With Truncation".utf8),
            tagHex: "a3b6167473100ee06e0c796c2955552b"),
        Vector(
            name: "case 6", key: [UInt8](repeating: 0xAA, count: 131),
            message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
            tagHex: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        Vector(
            name: "case 7", key: [UInt8](repeating: 0xAA, count: 131),
            message: Array(
                ("This is a test using a larger than block-size key and a larger than block-size data. "
                    + "The key needs to be hashed before being used by the HMAC algorithm.").utf8),
            tagHex: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: rfc4231)
    func rfc4231Vector(_ vector: Vector) {
        let expected = hexBytes(vector.tagHex)
        let tag = HMACSHA256.authenticate(message: vector.message, key: vector.key)
        #expect(Array(tag.bytes.prefix(expected.count)) == expected)
        #expect(tag.bytes.count == 32)

        // Incremental, byte by byte.
        var mac = HMACSHA256(key: Data(vector.key))
        for byte in vector.message {
            mac.update([byte])
        }
        #expect(mac.finalize() == tag)
        #expect(HMACSHA256.verify(tag, message: vector.message, key: vector.key))
    }

    @Test func emptyKeyAndMessage() {
        // Python: hmac.new(b"", b"", hashlib.sha256).hexdigest()
        let tag = HMACSHA256.authenticate(message: [UInt8](), key: [UInt8]())
        #expect(tag.hex == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func stringMessageMatchesBytes() {
        let key = Array("Jefe".utf8)
        #expect(
            HMACSHA256.authenticate(message: "what do ya want for nothing?", key: key).hex
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func incrementalRandomSplitsAndCopy() {
        var rng = SeededGenerator(seed: 7)
        let key = rng.bytes(40)
        let message = rng.bytes(5000)
        let expected = HMACSHA256.authenticate(message: message, key: key)
        var mac = HMACSHA256(key: key)
        let splits = rng.splits(of: message.count, maxPiece: 300)
        for range in splits.prefix(splits.count / 2) {
            mac.update(message[range])
        }
        let fork = mac.copy()
        for range in splits.dropFirst(splits.count / 2) {
            mac.update(message[range])
        }
        #expect(mac.finalize() == expected)
        let half = splits.prefix(splits.count / 2).last?.upperBound ?? 0
        #expect(fork.finalize() == HMACSHA256.authenticate(message: message[..<half], key: key))
    }

    @Test func verifyRejectsWrongTags() {
        let key = Array("key".utf8)
        let message = Array("message".utf8)
        let tag = HMACSHA256.authenticate(message: message, key: key).bytes
        #expect(HMACSHA256.verify(tag, message: message, key: key))
        var flipped = tag
        flipped[31] ^= 1
        #expect(!HMACSHA256.verify(flipped, message: message, key: key))
        #expect(!HMACSHA256.verify(tag.prefix(16), message: message, key: key))
        #expect(!HMACSHA256.verify(tag, message: message, key: Array("kez".utf8)))
        #expect(!HMACSHA256.verify(tag, message: Array("messagE".utf8), key: key))
    }
}
