/// An error from TernCrypto: bad encoded input, a wrong-sized value, or a file that could not be read.
///
/// `code` is stable and meant for programs to switch on; `message` says what was wrong and where,
/// in words a person can act on.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The broad kind of failure.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// A hexadecimal string had an odd length or a character outside `0-9a-fA-F`.
        case invalidHex
        /// A base64 or base64url string had a bad length, character, padding or trailing bits.
        case invalidBase64
        /// A value had the wrong number of bytes (for example a digest that is not 32 bytes).
        case invalidLength
        /// A file could not be opened or read.
        case fileIO
    }

    /// The kind of failure.
    public let code: Code
    /// What went wrong and where, for a person to read.
    public let message: String

    /// Creates an error of the given kind with a human-readable explanation.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `"<code>: <message>"`.
    public var description: String { "\(code.rawValue): \(message)" }
}

extension CryptoError {
    /// Describes the UTF-8 unit at `offset` for an error message: the character if printable ASCII, else its hex byte.
    static func describe(byte: UInt8, at offset: Int) -> String {
        if byte >= 0x20 && byte < 0x7F {
            return "character '\(Character(Unicode.Scalar(byte)))' at offset \(offset)"
        }
        return "byte 0x\(String(byte, radix: 16, uppercase: true)) at offset \(offset)"
    }
}
