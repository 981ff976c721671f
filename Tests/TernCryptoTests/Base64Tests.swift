import Foundation
import TernCrypto
import Testing

struct Base64Tests {
    /// RFC 4648 §10 base64 vectors.
    static let rfc4648: [(plain: String, encoded: String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test(arguments: rfc4648)
    func standardVector(plain: String, encoded: String) throws {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(try Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test(arguments: rfc4648)
    func urlSafeVectorIsUnpadded(plain: String, encoded: String) throws {
        let unpadded = encoded.replacingOccurrences(of: "=", with: "")
        #expect(Base64.encodeURLSafe(Array(plain.utf8)) == unpadded)
        #expect(try Base64.decodeURLSafe(unpadded) == Array(plain.utf8))
        // Correct padding is tolerated on input.
        #expect(try Base64.decodeURLSafe(encoded) == Array(plain.utf8))
    }

    @Test func alphabetsDiffer() throws {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64.encode(bytes) == "+/+/")
        #expect(Base64.encodeURLSafe(bytes) == "-_-_")
        #expect(try Base64.decode("+/+/") == bytes)
        #expect(try Base64.decodeURLSafe("-_-_") == bytes)
        #expect(throws: CryptoError.self) { try Base64.decode("-_-_") }
        #expect(throws: CryptoError.self) { try Base64.decodeURLSafe("+/+/") }
    }

    @Test func randomRoundTripsAgreeWithFoundation() throws {
        var rng = SeededGenerator(seed: 64)
        for length in 0...300 {
            let bytes = rng.bytes(length)
            let standard = Base64.encode(bytes)
            #expect(standard == Data(bytes).base64EncodedString())
            #expect(try Base64.decode(standard) == bytes)
            let url = Base64.encodeURLSafe(bytes)
            #expect(!url.contains("=") && !url.contains("+") && !url.contains("/"))
            #expect(try Base64.decodeURLSafe(url) == bytes)
        }
    }

    @Test(arguments: [
        ("Zg", "not a multiple of 4"),
        ("Zg=", "not a multiple of 4"),
        ("Zm9vY", "not a multiple of 4"),
        ("Zm9v!A==", "'!' at offset 4"),
        ("Zg==Zg==", "'=' at offset 2"),
        ("Zm 9v", "' ' at offset 2"),
        ("Zh==", "non-canonical"),
        ("Zm9=", "non-canonical"),
        ("====", "'=' at offset 0"),
        ("Zm9v-_==", "'-' at offset 4"),
    ])
    func standardRejects(input: String, fragment: String) {
        let error = #expect(throws: CryptoError.self) { try Base64.decode(input) }
        #expect(error?.code == .invalidBase64)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "no error")")
    }

    @Test(arguments: [
        ("Zm9vY", "dangling"),
        ("Zg=", "incomplete"),
        ("Zm8==", "incomplete"),
        ("Zh", "non-canonical"),
        ("Zm9v+A", "'+' at offset 4"),
        ("Zm9v\n", "byte 0xA at offset 4"),
    ])
    func urlSafeRejects(input: String, fragment: String) {
        let error = #expect(throws: CryptoError.self) { try Base64.decodeURLSafe(input) }
        #expect(error?.code == .invalidBase64)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "no error")")
    }
}
