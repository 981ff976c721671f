internal import Yams

/// The YAML type (`str`, `int`, `float`, `bool`, `null`, …) of a plain scalar's text, exactly as
/// Yams' `Resolver.default` decides it, without running its regular expressions where the text
/// alone settles the answer.
///
/// `Resolver.default` tries seven `NSRegularExpression`s in turn (bool, int, float, merge, null,
/// timestamp, value), about a microsecond each, and a spec asks for the type of dozens of
/// scalars. Most of them are names and words that no pattern can match, or plain decimal numbers,
/// so those are answered here; anything else still goes to the patterns. `PlainScalarTypeTests`
/// compares both answers on thousands of generated scalars.
enum PlainScalarType {
    /// The type `Resolver.default` gives a plain scalar with this text.
    static func tagName(of text: String) -> Tag.Name {
        settled(text) ?? byPatterns(text)
    }

    /// What `Resolver.default`'s patterns make of the text (the reference the shortcut must match).
    static func byPatterns(_ text: String) -> Tag.Name {
        Resolver.default.resolveTag(of: Node.scalar(Node.Scalar(text)))
    }

    /// The type when the text alone settles it, or `nil` when only the patterns can tell.
    ///
    /// Every pattern is anchored at the start, and each one starts with a digit, a sign, a dot,
    /// one of the letters that start the bool and null words (y n t f o, either case), `<`, `=`,
    /// `~`, or matches the empty text. Anything else is a string. `$` also matches before one
    /// final line break, so trailing line-break bytes are ignored when the words are compared, and
    /// a line break alone is the empty text.
    static func settled(_ text: String) -> Tag.Name? {
        let bytes = text.utf8
        guard let first = bytes.first else { return nil }
        switch first {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."):
            if let number = decimal(bytes) { return number }
            // Ints, floats (with .inf and .nan) and timestamps are spelled with these bytes only,
            // and none ends in a sign (`32+` is a string).
            guard bytes.allSatisfy(mayAppearInNumber) else { return .str }
            return bytes.last == UInt8(ascii: "+") || bytes.last == UInt8(ascii: "-") ? .str : nil
        case UInt8(ascii: "y"), UInt8(ascii: "Y"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"),
             UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "o"), UInt8(ascii: "O"):
            return mayBeWord(bytes) ? nil : .str
        case UInt8(ascii: "<"), UInt8(ascii: "="), UInt8(ascii: "~"):
            return nil
        case 0x0A...0x0D, 0x80...0xFF:
            // A lone line break (`\n`, `\r\n`, U+2028, …) is the empty null before a final line break.
            return bytes.count <= 3 ? nil : .str
        default:
            return .str
        }
    }

    /// `int` for `[-+]?(0|[1-9][0-9]*)` and `float` for `[-+]?[0-9]+\.[0-9]*`, the numbers specs
    /// are written with; `nil` for any other text. The bool pattern, tried first, cannot match
    /// either; no int alternative contains a dot, so the second one falls through to float.
    private static func decimal(_ bytes: String.UTF8View) -> Tag.Name? {
        var index = bytes.startIndex
        if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index = bytes.index(after: index) }
        let digitsStart = index
        while index < bytes.endIndex, isDigit(bytes[index]) { index = bytes.index(after: index) }
        let digitCount = bytes.distance(from: digitsStart, to: index)
        guard digitCount > 0 else { return nil }
        if index == bytes.endIndex {
            return digitCount == 1 || bytes[digitsStart] != UInt8(ascii: "0") ? .int : nil
        }
        guard bytes[index] == UInt8(ascii: ".") else { return nil }
        return bytes[bytes.index(after: index)...].allSatisfy(isDigit) ? .float : nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Bytes that the int, float and timestamp patterns can match (digits, hex digits, `0x`,
    /// `0o`, `inf`, `nan`, signs, `_`, `.`, `:`, the date and time separators, a zone `Z`), plus
    /// line breaks for `$`. Non-ASCII bytes count too, since U+0085, U+2028 and U+2029 are line breaks.
    private static func mayAppearInNumber(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"),
             UInt8(ascii: "x"), UInt8(ascii: "o"), UInt8(ascii: "i"), UInt8(ascii: "n"), UInt8(ascii: "I"), UInt8(ascii: "N"),
             UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "Z"),
             UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
             UInt8(ascii: " "), UInt8(ascii: "\t"), 0x0A...0x0D, 0x80...0xFF:
            return true
        default:
            return false
        }
    }

    /// Whether the text, less any trailing line-break bytes, is one of the bool or null words.
    private static func mayBeWord(_ bytes: String.UTF8View) -> Bool {
        func isLineBreakByte(_ byte: UInt8) -> Bool { (0x0A...0x0D).contains(byte) || byte >= 0x80 }
        var end = bytes.endIndex
        while end > bytes.startIndex, isLineBreakByte(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        let word = bytes[..<end]
        // Longer than any word, or not ASCII as none of them is: a string.
        guard word.count <= 5, word.allSatisfy({ $0 < 0x80 }) else { return false }
        return words.contains(String(decoding: word, as: UTF8.self))
    }

    /// Tag names as text (`tag:yaml.org,2002:int`), for tests, which do not import Yams.
    static func names(of text: String) -> (resolved: String, settled: String?, byPatterns: String) {
        (tagName(of: text).rawValue, settled(text)?.rawValue, byPatterns(text).rawValue)
    }

    private static let words: Set<String> = [
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
    ]
}
