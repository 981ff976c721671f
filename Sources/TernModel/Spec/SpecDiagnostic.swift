/// A place in a YAML file: 1-based line and column, as an editor shows them.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One problem found in a spec or targets file: where, which field, and what was wrong.
///
/// Rendered the way compilers do, so editors and terminals can jump to it:
/// `jobspecs/a.yaml:12:17: resources.accelerators: expected NAME:COUNT such as H100:8, found "H100x8"`.
public struct SpecDiagnostic: Sendable, Hashable, CustomStringConvertible, Codable {
    public var location: SourceLocation
    /// The field path, such as `resources.accelerators` or `env.HF_TOKEN`; empty for the document.
    public var path: String
    public var message: String

    public init(location: SourceLocation, path: String, message: String) {
        self.location = location
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "\(location): \(message)" : "\(location): \(path): \(message)"
    }

    enum CodingKeys: String, CodingKey { case file, line, column, path, message }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        location = SourceLocation(
            file: try container.decode(String.self, forKey: .file),
            line: try container.decode(Int.self, forKey: .line),
            column: try container.decode(Int.self, forKey: .column))
        path = try container.decode(String.self, forKey: .path)
        message = try container.decode(String.self, forKey: .message)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(location.file, forKey: .file)
        try container.encode(location.line, forKey: .line)
        try container.encode(location.column, forKey: .column)
        try container.encode(path, forKey: .path)
        try container.encode(message, forKey: .message)
    }
}

/// Every problem found in one file, in the order they appear in it.
public struct SpecValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [SpecDiagnostic]

    public init(_ diagnostics: [SpecDiagnostic]) {
        // Stable: problems found at the same place keep the order they were found in.
        self.diagnostics = diagnostics.enumerated().sorted { ($0.element.location, $0.offset) < ($1.element.location, $1.offset) }.map(\.element)
    }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
