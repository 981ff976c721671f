import Foundation
import TernCrypto
import Testing

struct SHA256DigestTests {
    static let abcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    @Test func hexRoundTripAndAccessors() throws {
        let digest = SHA256.hash("abc")
        #expect(digest.hex == Self.abcHex)
        #expect(digest.description == Self.abcHex)
        #expect(digest.bytes == hexBytes(Self.abcHex))
        #expect(digest.bytes.count == SHA256Digest.byteCount)
        #expect(try SHA256Digest(hex: Self.abcHex) == digest)
        #expect(try SHA256Digest(hex: Self.abcHex.uppercased()) == digest)
        #expect(try SHA256Digest(bytes: digest.bytes) == digest)
        #expect(digest.withUnsafeBytes { Array($0) } == digest.bytes)
    }

    @Test func equalityAndHashingSeeEveryByte() throws {
        let base = SHA256.hash("abc")
        var seen: Set<SHA256Digest> = [base]
        for index in 0..<32 {
            var bytes = base.bytes
            bytes[index] ^= 0x80
            let other = try SHA256Digest(bytes: bytes)
            #expect(other != base)
            seen.insert(other)
        }
        #expect(seen.count == 33)
        #expect(seen.contains(try SHA256Digest(hex: Self.abcHex)))
    }

    @Test(arguments: [
        (String(repeating: "a", count: 62), CryptoError.Code.invalidLength),
        (String(repeating: "a", count: 66), .invalidLength),
        (String(repeating: "a", count: 63), .invalidHex),
        (String(repeating: "z", count: 64), .invalidHex),
        ("", .invalidLength),
    ])
    func badHexIsRejected(text: String, code: CryptoError.Code) {
        let error = #expect(throws: CryptoError.self) { try SHA256Digest(hex: text) }
        #expect(error?.code == code)
    }

    @Test func wrongByteCountIsRejected() {
        let error = #expect(throws: CryptoError.self) { try SHA256Digest(bytes: [UInt8](repeating: 0, count: 31)) }
        #expect(error?.code == .invalidLength)
        #expect(error?.message.contains("31") == true)
    }

    @Test func codableAsHexString() throws {
        struct Record: Codable, Equatable {
            var digest: SHA256Digest
        }
        let record = Record(digest: SHA256.hash("abc"))
        let json = try JSONEncoder().encode(record)
        #expect(String(decoding: json, as: UTF8.self) == "{\"digest\":\"\(Self.abcHex)\"}")
        #expect(try JSONDecoder().decode(Record.self, from: json) == record)

        let bad = Data("{\"digest\":\"not-hex\"}".utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Record.self, from: bad) }
    }
}
