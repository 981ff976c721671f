public import Foundation

// Integers, floats, Bool, String, Decimal: their text forms are PostgreSQL's own.

extension Int: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .int8 }
    public static var postgresArrayDataType: PostgresDataType { .int8Array }
    public func postgresText() -> String { String(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeInteger(cell, text)
    }
}

extension Int64: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .int8 }
    public static var postgresArrayDataType: PostgresDataType { .int8Array }
    public func postgresText() -> String { String(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeInteger(cell, text)
    }
}

extension Int32: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .int4 }
    public static var postgresArrayDataType: PostgresDataType { .int4Array }
    public func postgresText() -> String { String(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeInteger(cell, text)
    }
}

extension Int16: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .int2 }
    public static var postgresArrayDataType: PostgresDataType { .int2Array }
    public func postgresText() -> String { String(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeInteger(cell, text)
    }
}

/// Parses an integer column into `T`, refusing non-integer columns and values that do not fit.
private func decodeInteger<T: FixedWidthInteger>(_ cell: PostgresCell, _ text: String) throws(PostgresError) -> T {
    // numeric is allowed too (sum(int8) is numeric); a fractional value fails below.
    guard cell.type.isInteger || cell.type == .numeric || cell.type.isText else {
        throw cell.mismatch(T.self, "expected an integer column (int2, int4, int8, numeric)")
    }
    guard let value = T(text) else {
        throw cell.mismatch(T.self, "\"\(text.prefix(40))\" is not an integer that fits in \(T.self)")
    }
    return value
}

extension Double: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .float8 }
    public static var postgresArrayDataType: PostgresDataType { .float8Array }
    public func postgresText() -> String { formatFloat(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeFloat(cell, text)
    }
}

extension Float: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .float4 }
    public static var postgresArrayDataType: PostgresDataType { .float4Array }
    public func postgresText() -> String { formatFloat(self) }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = try decodeFloat(cell, text)
    }
}

/// Swift prints `inf`/`nan`; PostgreSQL spells them `Infinity`/`NaN`. Finite values round-trip exactly.
private func formatFloat<T: BinaryFloatingPoint & LosslessStringConvertible>(_ value: T) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
    return String(value)
}

private func decodeFloat<T: BinaryFloatingPoint & LosslessStringConvertible>(_ cell: PostgresCell, _ text: String) throws(PostgresError) -> T {
    let allowed: [PostgresDataType] = [.float4, .float8, .numeric, .int2, .int4, .int8]
    guard allowed.contains(cell.type) || cell.type.isText else {
        throw cell.mismatch(T.self, "expected a numeric column (float4, float8, numeric, integer)")
    }
    switch text {
    case "NaN": return .nan
    case "Infinity": return .infinity
    case "-Infinity": return -.infinity
    default:
        guard let value = T(text) else { throw cell.mismatch(T.self, "\"\(text.prefix(40))\" is not a number") }
        return value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .bool }
    public static var postgresArrayDataType: PostgresDataType { .boolArray }
    public func postgresText() -> String { self ? "t" : "f" }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        try cell.require(Bool.self, oneOf: [.bool])
        switch text {
        case "t": self = true
        case "f": self = false
        default: throw cell.mismatch(Bool.self, "\"\(text.prefix(40))\" is not t or f")
        }
    }
}

extension String: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    /// Strings are sent untyped so the server reads them as whatever the context needs (text, uuid,
    /// jsonb, timestamptz...); `SELECT $1` still yields text.
    public static var postgresDataType: PostgresDataType { .unspecified }
    public static var postgresArrayDataType: PostgresDataType { .textArray }
    public func postgresText() -> String { self }
    /// Any column decodes as String: it is the value's text form.
    public init(postgresCell cell: PostgresCell, text: String) { self = text }
}

extension Decimal: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .numeric }
    public static var postgresArrayDataType: PostgresDataType { .numericArray }
    public func postgresText() -> String { description }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        let allowed: [PostgresDataType] = [.numeric, .int2, .int4, .int8, .float4, .float8]
        guard allowed.contains(cell.type) || cell.type.isText else {
            throw cell.mismatch(Decimal.self, "expected a numeric column")
        }
        guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw cell.mismatch(Decimal.self, "\"\(text.prefix(40))\" is not a decimal number")
        }
        self = value
    }
}
