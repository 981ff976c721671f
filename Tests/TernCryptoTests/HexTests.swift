import Foundation
import TernCrypto
import Testing

struct HexTests {
    /// RFC 4648 §10 base16 vectors (RFC gives uppercase; output is lowercase).
    static let rfc4648: [(plain: String, hex: String)] = [
        ("", ""), ("f", "66"), ("fo", "666F"), ("foo", "666F6F"), ("foob", "666F6F62"),
        ("fooba", "666F6F6261"), ("foobar", "666F6F626172"),
    ]

    @Test(arguments: rfc4648)
    func rfc4648Vector(plain: String, hex: String) throws {
        #expect(Hex.encode(Array(plain.utf8)) == hex.lowercased())
        #expect(try Hex.decode(hex) == Array(plain.utf8))
        #expect(try Hex.decode(hex.lowercased()) == Array(plain.utf8))
    }

    @Test func allByteValuesRoundTrip() throws {
        let bytes = Array(UInt8.min...UInt8.max)
        let hex = Hex.encode(bytes)
        #expect(hex.count == 512)
        #expect(hex.hasPrefix("000102"))
        #expect(hex.hasSuffix("fdfeff"))
        #expect(try Hex.decode(hex) == bytes)
        #expect(try Hex.decode(hex.uppercased()) == bytes)
        #expect(Hex.encode(Data(bytes)) == hex)
        #expect(Hex.encode(bytes.lazy.map { $0 }) == hex)
        #expect(try Hex.decode(Substring("zz" + hex).dropFirst(2)) == bytes)
    }

    @Test func mixedCaseAccepted() throws {
        #expect(try Hex.decode("DeadBEEF") == [0xDE, 0xAD, 0xBE, 0xEF])
    }

    @Test(arguments: [
        ("abc", "odd length 3"),
        ("0g", "'g' at offset 1"),
        ("zz00", "'z' at offset 0"),
        ("00 11", "' ' at offset 2"),
        ("0x00", "'x' at offset 1"),
        ("é0", "byte 0xC3 at offset 0"),
    ])
    func badInputNamesTheProblem(input: String, fragment: String) {
        let error = #expect(throws: CryptoError.self) { try Hex.decode(input) }
        #expect(error?.code == .invalidHex)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "no error")")
        #expect(error?.description.hasPrefix("invalidHex: ") == true)
    }
}
