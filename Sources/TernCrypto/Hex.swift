/// Hexadecimal (base16) encoding: lowercase output, either case accepted on input.
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Encodes bytes as a lowercase hex string, two digits per byte.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        if let encoded = bytes.withContiguousStorageIfAvailable({ encode(buffer: $0) }) {
            return encoded
        }
        return Array(bytes).withUnsafeBufferPointer { encode(buffer: $0) }
    }

    /// Decodes a hex string (upper, lower or mixed case; no `0x` prefix, no whitespace).
    ///
    /// - Throws: ``CryptoError`` with code `.invalidHex` for an odd length or a non-hex character,
    ///   naming the offending character and its offset.
    public static func decode(_ string: some StringProtocol) throws(CryptoError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError>
        if let r = string.utf8.withContiguousStorageIfAvailable({ decode(buffer: $0) }) {
            result = r
        } else {
            result = Array(string.utf8).withUnsafeBufferPointer { decode(buffer: $0) }
        }
        return try result.get()
    }

    static func encode(buffer: UnsafeBufferPointer<UInt8>) -> String {
        if buffer.isEmpty { return "" }
        return String(unsafeUninitializedCapacity: buffer.count * 2) { out in
            digits.withUnsafeBufferPointer { digits in
                var i = 0
                for byte in buffer {
                    out[i] = digits[Int(byte >> 4)]
                    out[i + 1] = digits[Int(byte & 0x0F)]
                    i += 2
                }
            }
            return buffer.count * 2
        }
    }

    /// Value of one hex digit, or nil.
    @inline(__always)
    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    static func decode(buffer: UnsafeBufferPointer<UInt8>) -> Result<[UInt8], CryptoError> {
        // Report a bad character before a bad length: it is the more useful message.
        if let bad = buffer.firstIndex(where: { nibble($0) == nil }) {
            return .failure(badDigit(buffer[bad], at: bad))
        }
        guard buffer.count % 2 == 0 else {
            return .failure(CryptoError(
                .invalidHex,
                "hex string has odd length \(buffer.count); every byte needs exactly two hex digits"))
        }
        var out = [UInt8]()
        out.reserveCapacity(buffer.count / 2)
        var i = 0
        while i < buffer.count {
            out.append(nibble(buffer[i])! << 4 | nibble(buffer[i + 1])!)
            i += 2
        }
        return .success(out)
    }

    private static func badDigit(_ byte: UInt8, at offset: Int) -> CryptoError {
        CryptoError(
            .invalidHex,
            "invalid hex \(CryptoError.describe(byte: byte, at: offset)); expected 0-9, a-f or A-F")
    }
}
