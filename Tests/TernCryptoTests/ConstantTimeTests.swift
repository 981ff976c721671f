import Foundation
import TernCrypto
import Testing

struct ConstantTimeTests {
    @Test func equalSequences() {
        let bytes = Array("secret token".utf8)
        #expect(constantTimeEquals(bytes, Data(bytes)))
        #expect(constantTimeEquals([UInt8](), Data()))
        #expect(constantTimeEquals(SHA256.hash("x"), SHA256.hash("x").bytes))
    }

    @Test func differingSequences() {
        let bytes = Array("secret token".utf8)
        for index in bytes.indices {
            var other = bytes
            other[index] ^= 0x01
            #expect(!constantTimeEquals(bytes, other))
        }
        #expect(!constantTimeEquals(bytes, bytes.dropLast()))
        #expect(!constantTimeEquals(bytes, bytes + [0]))
        #expect(!constantTimeEquals([UInt8](), [0]))
    }
}
