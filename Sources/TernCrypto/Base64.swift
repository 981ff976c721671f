/// Base64 encoding (RFC 4648): the standard alphabet with `=` padding, and the URL-safe
/// alphabet (`-` and `_`) without padding.
///
/// Decoding is strict: no whitespace or line breaks, padding only at the end, and the unused
/// low bits of the last character must be zero, so every byte string has exactly one encoding.
public enum Base64 {
    private static let standardAlphabet: [UInt8] =
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet: [UInt8] =
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let standardReverse = reverseTable(standardAlphabet)
    private static let urlReverse = reverseTable(urlAlphabet)
    private static let invalid: UInt8 = 0xFF
    private static let pad = UInt8(ascii: "=")

    /// Encodes bytes as standard base64 (`+`, `/`) with `=` padding.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        encode(bytes, alphabet: standardAlphabet, padded: true)
    }

    /// Decodes standard base64 (`+`, `/`). The length must be a multiple of 4, padded with `=`.
    ///
    /// - Throws: ``CryptoError`` with code `.invalidBase64`, naming the bad character or length.
    public static func decode(_ string: some StringProtocol) throws(CryptoError) -> [UInt8] {
        try decode(string, reverse: standardReverse, variant: "base64", paddingRequired: true)
    }

    /// Encodes bytes as base64url (`-`, `_`, RFC 4648 §5) without padding.
    public static func encodeURLSafe(_ bytes: some Sequence<UInt8>) -> String {
        encode(bytes, alphabet: urlAlphabet, padded: false)
    }

    /// Decodes base64url (`-`, `_`). Padding is optional, but if present it must be correct.
    ///
    /// - Throws: ``CryptoError`` with code `.invalidBase64`, naming the bad character or length.
    public static func decodeURLSafe(_ string: some StringProtocol) throws(CryptoError) -> [UInt8] {
        try decode(string, reverse: urlReverse, variant: "base64url", paddingRequired: false)
    }

    // MARK: - Implementation

    private static func reverseTable(_ alphabet: [UInt8]) -> [UInt8] {
        var table = [UInt8](repeating: invalid, count: 256)
        for (value, char) in alphabet.enumerated() {
            table[Int(char)] = UInt8(value)
        }
        return table
    }

    private static func encode(_ bytes: some Sequence<UInt8>, alphabet: [UInt8], padded: Bool) -> String {
        if let s = bytes.withContiguousStorageIfAvailable({ encode(buffer: $0, alphabet: alphabet, padded: padded) }) {
            return s
        }
        return Array(bytes).withUnsafeBufferPointer { encode(buffer: $0, alphabet: alphabet, padded: padded) }
    }

    private static func encode(buffer: UnsafeBufferPointer<UInt8>, alphabet: [UInt8], padded: Bool) -> String {
        let n = buffer.count
        if n == 0 { return "" }
        let full = n / 3
        let rest = n - full * 3
        let capacity = full * 4 + (rest == 0 ? 0 : (padded ? 4 : rest + 1))
        return String(unsafeUninitializedCapacity: capacity) { out in
            alphabet.withUnsafeBufferPointer { a in
                var i = 0
                var o = 0
                while i + 3 <= n {
                    let v = UInt32(buffer[i]) << 16 | UInt32(buffer[i + 1]) << 8 | UInt32(buffer[i + 2])
                    out[o] = a[Int(v >> 18)]
                    out[o + 1] = a[Int((v >> 12) & 0x3F)]
                    out[o + 2] = a[Int((v >> 6) & 0x3F)]
                    out[o + 3] = a[Int(v & 0x3F)]
                    i += 3
                    o += 4
                }
                if rest == 1 {
                    let v = UInt32(buffer[i]) << 16
                    out[o] = a[Int(v >> 18)]
                    out[o + 1] = a[Int((v >> 12) & 0x3F)]
                    o += 2
                    if padded {
                        out[o] = pad
                        out[o + 1] = pad
                        o += 2
                    }
                } else if rest == 2 {
                    let v = UInt32(buffer[i]) << 16 | UInt32(buffer[i + 1]) << 8
                    out[o] = a[Int(v >> 18)]
                    out[o + 1] = a[Int((v >> 12) & 0x3F)]
                    out[o + 2] = a[Int((v >> 6) & 0x3F)]
                    o += 3
                    if padded {
                        out[o] = pad
                        o += 1
                    }
                }
                return o
            }
        }
    }

    private static func decode(
        _ string: some StringProtocol, reverse: [UInt8], variant: String, paddingRequired: Bool
    ) throws(CryptoError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError>
        if let r = string.utf8.withContiguousStorageIfAvailable({
            decode(buffer: $0, reverse: reverse, variant: variant, paddingRequired: paddingRequired)
        }) {
            result = r
        } else {
            result = Array(string.utf8).withUnsafeBufferPointer {
                decode(buffer: $0, reverse: reverse, variant: variant, paddingRequired: paddingRequired)
            }
        }
        return try result.get()
    }

    private static func decode(
        buffer: UnsafeBufferPointer<UInt8>, reverse: [UInt8], variant: String, paddingRequired: Bool
    ) -> Result<[UInt8], CryptoError> {
        func failure(_ message: String) -> Result<[UInt8], CryptoError> {
            .failure(CryptoError(.invalidBase64, "invalid \(variant): \(message)"))
        }
        let total = buffer.count
        // Report a character outside the alphabet before any length or padding problem.
        if let bad = reverse.withUnsafeBufferPointer({ r in buffer.firstIndex { r[Int($0)] == invalid && $0 != pad } }) {
            return failure("unexpected \(CryptoError.describe(byte: buffer[bad], at: bad))")
        }
        // Strip up to two trailing '='.
        var n = total
        while n > 0 && total - n < 2 && buffer[n - 1] == pad { n -= 1 }
        let padding = total - n
        if paddingRequired || padding > 0 {
            guard total % 4 == 0 else {
                return failure(
                    "length \(total) is not a multiple of 4"
                        + (paddingRequired ? " (standard base64 must be padded with '=')" : " (padding is present but incomplete)"))
            }
        }
        let rest = n % 4
        guard rest != 1 else {
            return failure("length \(n) (without padding) leaves a single dangling character; the input is truncated")
        }
        if padding > 0 && padding != (4 - rest) % 4 {
            return failure("\(padding) padding character(s) do not match the data length")
        }
        var out = [UInt8]()
        out.reserveCapacity(n / 4 * 3 + 2)
        return reverse.withUnsafeBufferPointer { r in
            var accumulator: UInt32 = 0
            var i = 0
            while i < n {
                let c = buffer[i]
                let v = r[Int(c)]
                guard v != invalid else {
                    let hint = c == pad ? " ('=' may only appear at the end)" : ""
                    return failure("unexpected \(CryptoError.describe(byte: c, at: i))\(hint)")
                }
                accumulator = accumulator << 6 | UInt32(v)
                i += 1
                if i % 4 == 0 {
                    out.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                    out.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                    out.append(UInt8(truncatingIfNeeded: accumulator))
                    accumulator = 0
                }
            }
            switch rest {
            case 2:
                guard accumulator & 0xF == 0 else {
                    return failure("non-canonical final \(CryptoError.describe(byte: buffer[n - 1], at: n - 1)) (unused bits must be zero)")
                }
                out.append(UInt8(truncatingIfNeeded: accumulator >> 4))
            case 3:
                guard accumulator & 0x3 == 0 else {
                    return failure("non-canonical final \(CryptoError.describe(byte: buffer[n - 1], at: n - 1)) (unused bits must be zero)")
                }
                out.append(UInt8(truncatingIfNeeded: accumulator >> 10))
                out.append(UInt8(truncatingIfNeeded: accumulator >> 2))
            default:
                break
            }
            return .success(out)
        }
    }
}
