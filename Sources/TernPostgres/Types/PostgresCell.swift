/// One field of a result row, in PostgreSQL's text format, with what a decoder needs to say where it came from.
public struct PostgresCell: Sendable {
    /// The column's type.
    public var type: PostgresDataType
    /// The column's name, for error messages.
    public var columnName: String
    /// The text form; nil for SQL NULL.
    public var text: String?

    /// Makes a cell (decoders of array elements build cells for each element).
    public init(type: PostgresDataType, columnName: String, text: String?) {
        self.type = type
        self.columnName = columnName
        self.text = text
    }

    /// An error saying this cell cannot become `target`, and why.
    public func mismatch<Target>(_ target: Target.Type, _ reason: String) -> PostgresError {
        PostgresError(code: .decoding, message: "column \"\(columnName)\" (\(type)) cannot be decoded as \(Target.self): \(reason)")
    }

    /// Fails unless the column's type is one of `allowed`.
    func require<Target>(_ target: Target.Type, oneOf allowed: [PostgresDataType]) throws(PostgresError) {
        if !allowed.contains(type) {
            throw mismatch(target, "expected a column of type \(allowed.map(\.description).joined(separator: " or "))")
        }
    }
}

/// A Swift type that a result column can be decoded into.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL cell (its `text` is not nil).
    init(postgresCell cell: PostgresCell, text: String) throws(PostgresError)
    /// What a NULL cell decodes to; the default throws, `Optional` returns nil.
    static func decodeNull(cell: PostgresCell) throws(PostgresError) -> Self
}

extension PostgresDecodable {
    public static func decodeNull(cell: PostgresCell) throws(PostgresError) -> Self {
        throw cell.mismatch(Self.self, "the value is NULL; decode it as an Optional")
    }

    /// Decodes a cell, NULL included.
    public static func decode(_ cell: PostgresCell) throws(PostgresError) -> Self {
        guard let text = cell.text else { return try decodeNull(cell: cell) }
        return try Self(postgresCell: cell, text: text)
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        self = .some(try Wrapped(postgresCell: cell, text: text))
    }

    public static func decodeNull(cell: PostgresCell) throws(PostgresError) -> Self { nil }
}
