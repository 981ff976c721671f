public import Foundation

// Date (timestamptz), UUID and Data (bytea).

extension Date: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .timestamptz }
    public static var postgresArrayDataType: PostgresDataType { .timestamptzArray }

    /// ISO 8601 in UTC with microseconds, PostgreSQL's own precision.
    public func postgresText() throws(PostgresError) -> String {
        let interval = timeIntervalSince1970
        guard interval.isFinite else {
            throw PostgresError(code: .encoding, message: "a Date that is not finite cannot be stored")
        }
        var micros = (interval * 1_000_000).rounded()
        var seconds = (micros / 1_000_000).rounded(.down)
        micros -= seconds * 1_000_000
        if micros >= 1_000_000 { seconds += 1; micros -= 1_000_000 }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let year = Int(parts.tm_year) + 1900
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", year, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(micros))
    }

    /// Reads `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]` (timestamptz with DateStyle ISO), a plain
    /// timestamp (taken as UTC) or a date (midnight UTC).
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        try cell.require(Date.self, oneOf: [.timestamptz, .timestamp, .date])
        guard let date = Self.parsePostgresTimestamp(text) else {
            throw cell.mismatch(Date.self, "\"\(text.prefix(40))\" is not an ISO timestamp (infinity and BC dates are not supported)")
        }
        self = date
    }

    static func parsePostgresTimestamp(_ text: String) -> Date? {
        var scanner = DigitScanner(Array(text.utf8))
        guard let year = scanner.number(digits: 4), scanner.skip("-"),
              let month = scanner.number(digits: 2), scanner.skip("-"),
              let day = scanner.number(digits: 2)
        else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0
        if scanner.skip(" ") || scanner.skip("T") {
            guard let h = scanner.number(digits: 2), scanner.skip(":"),
                  let m = scanner.number(digits: 2), scanner.skip(":"),
                  let s = scanner.number(digits: 2)
            else { return nil }
            (hour, minute, second) = (h, m, s)
            if scanner.skip(".") {
                var scale = 0.1
                var any = false
                while let digit = scanner.digit() {
                    fraction += Double(digit) * scale
                    scale /= 10
                    any = true
                }
                if !any { return nil }
            }
            if let sign = scanner.sign() {
                guard let oh = scanner.number(digits: 2) else { return nil }
                var offset = oh * 3600
                if scanner.skip(":") {
                    guard let om = scanner.number(digits: 2) else { return nil }
                    offset += om * 60
                    if scanner.skip(":") {
                        guard let os = scanner.number(digits: 2) else { return nil }
                        offset += os
                    }
                }
                offsetSeconds = sign * offset
            } else if scanner.skip("Z") {
                offsetSeconds = 0
            }
        }
        guard scanner.atEnd, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch - offsetSeconds) + fraction)
    }
}

/// A cursor over ASCII digits and separators, for the timestamp parser.
private struct DigitScanner {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { index == bytes.count }

    mutating func digit() -> Int? {
        guard index < bytes.count, (48...57).contains(bytes[index]) else { return nil }
        defer { index += 1 }
        return Int(bytes[index] - 48)
    }

    mutating func number(digits: Int) -> Int? {
        var value = 0
        for _ in 0..<digits {
            guard let d = digit() else { return nil }
            value = value * 10 + d
        }
        return value
    }

    mutating func skip(_ character: Character) -> Bool {
        guard index < bytes.count, let ascii = character.asciiValue, bytes[index] == ascii else { return false }
        index += 1
        return true
    }

    mutating func sign() -> Int? {
        if skip("+") { return 1 }
        if skip("-") { return -1 }
        return nil
    }
}

extension UUID: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .uuid }
    public static var postgresArrayDataType: PostgresDataType { .uuidArray }
    public func postgresText() -> String { uuidString.lowercased() }
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        guard cell.type == .uuid || cell.type.isText else {
            throw cell.mismatch(UUID.self, "expected a uuid column")
        }
        guard let value = UUID(uuidString: text) else {
            throw cell.mismatch(UUID.self, "\"\(text.prefix(40))\" is not a UUID")
        }
        self = value
    }
}

extension Data: PostgresEncodable, PostgresDecodable, PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { .bytea }
    public static var postgresArrayDataType: PostgresDataType { .byteaArray }

    /// Hex format (`\x0a1b`), used where text is required: COPY and array literals.
    public func postgresText() -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 2 + count * 2)
        out[0] = UInt8(ascii: "\\")
        out[1] = UInt8(ascii: "x")
        var position = 2
        for byte in self {
            out[position] = digits[Int(byte >> 4)]
            out[position + 1] = digits[Int(byte & 0x0f)]
            position += 2
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parameters go as raw bytes: no hex doubling, no escaping.
    public func postgresBinary() -> [UInt8]? { Array(self) }

    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        try cell.require(Data.self, oneOf: [.bytea])
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            throw cell.mismatch(Data.self, "expected bytea in hex format (bytea_output = 'hex')")
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else {
                throw cell.mismatch(Data.self, "invalid hex digit in bytea")
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        self = Data(bytes)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: return c - 48
    case 97...102: return c - 87
    case 65...70: return c - 55
    default: return nil
    }
}
