// One-dimensional arrays in PostgreSQL's text array format: {1,2,"a b",NULL}.

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresDataType: PostgresDataType { Element.postgresArrayDataType }

    /// Every element is quoted, so no element text needs a special case. The literal is built as
    /// UTF-8 bytes and made a `String` once: a submission's arrays hold megabytes of spec JSON, and
    /// appending to a `String` one scalar at a time took most of the client's time sending them.
    public func postgresText() throws(PostgresError) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, element) in enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            let text = try element.postgresText().utf8
            if text.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                for byte in text {
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                    out.append(byte)
                }
            } else {
                out.append(contentsOf: text)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        guard let elementType = cell.type.elementType ?? (cell.type.isText ? .text : nil) else {
            throw cell.mismatch([Element].self, "expected an array column")
        }
        guard let items = parsePostgresArray(text) else {
            throw cell.mismatch([Element].self, "\"\(text.prefix(60))\" is not a one-dimensional array literal")
        }
        var result: [Element] = []
        result.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            let elementCell = PostgresCell(type: elementType, columnName: "\(cell.columnName)[\(index + 1)]", text: item)
            result.append(try Element.decode(elementCell))
        }
        self = result
    }
}

/// Splits `{a,"b c",NULL}` into its elements (nil for NULL); nil for nested or malformed input.
func parsePostgresArray(_ text: String) -> [String?]? {
    var scalars = Array(text.unicodeScalars)[...]
    // A lower bound decoration such as "[0:2]={...}" is allowed and ignored.
    if scalars.first == "[" {
        guard let equals = scalars.firstIndex(of: "=") else { return nil }
        scalars = scalars[(equals + 1)...]
    }
    guard scalars.first == "{", scalars.last == "}" else { return nil }
    scalars = scalars.dropFirst().dropLast()
    if scalars.isEmpty { return [] }
    var items: [String?] = []
    var index = scalars.startIndex
    while true {
        var item = String.UnicodeScalarView()
        var quoted = false
        if index < scalars.endIndex, scalars[index] == "\"" {
            quoted = true
            index += 1
            while true {
                guard index < scalars.endIndex else { return nil }
                let c = scalars[index]
                index += 1
                if c == "\\" {
                    guard index < scalars.endIndex else { return nil }
                    item.append(scalars[index])
                    index += 1
                } else if c == "\"" {
                    break
                } else {
                    item.append(c)
                }
            }
        } else {
            while index < scalars.endIndex, scalars[index] != "," {
                let c = scalars[index]
                if c == "{" || c == "\"" { return nil }
                if c == "\\" {
                    index += 1
                    guard index < scalars.endIndex else { return nil }
                    item.append(scalars[index])
                } else {
                    item.append(c)
                }
                index += 1
            }
        }
        let value = String(item)
        items.append(!quoted && value == "NULL" ? nil : value)
        if index == scalars.endIndex { return items }
        guard scalars[index] == "," else { return nil }
        index += 1
    }
}
