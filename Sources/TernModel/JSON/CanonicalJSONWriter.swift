/// Appends canonical JSON (see ``JSONValue/canonicalText``) one piece at a time.
///
/// ``JSONValue`` writes itself through this, and so do the hand-written encoders of hot types
/// (``JobSpec/canonicalJSON``): a spec written straight from its fields skips building a tree of
/// boxed dictionaries only to sort and print it. A writer does not sort: callers give an object's
/// keys in UTF-8 byte order (``stringMap(_:)`` sorts a dictionary's). Tests compare every
/// hand-written encoder with the generic `Encodable` path.
public struct CanonicalJSONWriter: Sendable {
    public private(set) var text: String
    /// Whether the next key or array element needs a comma before it.
    private var needsComma = false

    public init(reservingCapacity capacity: Int = 0) {
        text = ""
        text.reserveCapacity(capacity)
    }

    // MARK: Structure

    public mutating func beginObject() {
        separate()
        text += "{"
        needsComma = false
    }

    public mutating func endObject() {
        text += "}"
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        text += "["
        needsComma = false
    }

    public mutating func endArray() {
        text += "]"
        needsComma = true
    }

    /// An object member's key; the value written next is its value.
    public mutating func key(_ key: String) {
        separate()
        Self.appendString(key, to: &text)
        text += ":"
        needsComma = false
    }

    // MARK: Values

    public mutating func null() {
        separate()
        text += "null"
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        separate()
        text += value ? "true" : "false"
        needsComma = true
    }

    public mutating func integer(_ value: Int64) {
        separate()
        text += String(value)
        needsComma = true
    }

    public mutating func integer(_ value: Int) { integer(Int64(value)) }

    /// Whole numbers below 9e15 without a fraction (`2`, not `2.0`); others as Swift's shortest
    /// text that reads back as the same Double.
    public mutating func double(_ value: Double) {
        separate()
        if value == value.rounded(), abs(value) < 9e15 {
            text += String(Int64(value))
        } else {
            text += "\(value)"
        }
        needsComma = true
    }

    public mutating func string(_ value: String) {
        separate()
        Self.appendString(value, to: &text)
        needsComma = true
    }

    public mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    public mutating func integers(_ values: [Int]) {
        beginArray()
        for value in values { integer(value) }
        endArray()
    }

    /// A `[String: String]` as an object, its keys sorted by their UTF-8 bytes.
    public mutating func stringMap(_ map: [String: String]) {
        beginObject()
        for (name, value) in map.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            key(name)
            string(value)
        }
        endObject()
    }

    private mutating func separate() {
        if needsComma { text += "," }
    }

    /// A JSON string: only the escapes JSON requires (`"`, `\`, control characters), the rest as UTF-8.
    private static func appendString(_ value: String, to output: inout String) {
        output += "\""
        // Most strings need no escape at all: append them whole instead of scalar by scalar.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            output += value
            output += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}
