import Foundation

/// A Codable value stored as `jsonb` (or read from `json`/`jsonb`).
///
/// Wrap a value to bind it (`"INSERT ... VALUES (\(PostgresJSON(spec)))"`) and decode a column with
/// `row.decode(PostgresJSON<Spec>.self, ...)` then `.value`. Keys are written sorted, so equal values
/// give equal text.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresEncodable, PostgresDecodable {
    /// The wrapped value.
    public var value: Value

    /// Wraps a value.
    public init(_ value: Value) { self.value = value }

    public static var postgresDataType: PostgresDataType { .jsonb }

    public func postgresText() throws(PostgresError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw PostgresError(code: .encoding, message: "could not encode \(Value.self) as JSON: \(error)")
        }
    }

    public init(postgresCell cell: PostgresCell, text: String) throws(PostgresError) {
        guard cell.type == .json || cell.type == .jsonb || cell.type.isText else {
            throw cell.mismatch(Value.self, "expected a json or jsonb column")
        }
        do {
            value = try JSONDecoder().decode(Value.self, from: Data(text.utf8))
        } catch {
            throw cell.mismatch(Value.self, "the JSON does not match: \(error)")
        }
    }
}
