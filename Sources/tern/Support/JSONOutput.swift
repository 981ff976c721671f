import Foundation

/// Prints a value as JSON on stdout: sorted keys and ISO 8601 dates, so scripts get a stable shape.
///
/// `convertKeys` turns Swift property names into snake_case; pass `false` for values whose keys
/// are data (environment names, labels) or already spelled out by CodingKeys.
func printJSON<Value: Encodable>(_ value: Value, convertKeys: Bool = true) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    if convertKeys { encoder.keyEncodingStrategy = .convertToSnakeCase }
    FileHandle.standardOutput.write(try encoder.encode(value))
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Lays rows out in aligned columns, two spaces apart.
func formatTable(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}
