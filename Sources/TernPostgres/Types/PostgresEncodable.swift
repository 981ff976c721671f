/// A Swift value that can be sent to PostgreSQL as a bound parameter or a COPY field.
///
/// Values travel in PostgreSQL's text format, except `bytea`, which travels as raw bytes.
public protocol PostgresEncodable: Sendable {
    /// The PostgreSQL type the value is sent as.
    static var postgresDataType: PostgresDataType { get }
    /// The value in PostgreSQL's text input format.
    func postgresText() throws(PostgresError) -> String
    /// Raw bytes to send in binary format instead of text; nil (the default) sends text.
    func postgresBinary() -> [UInt8]?
}

extension PostgresEncodable {
    public func postgresBinary() -> [UInt8]? { nil }
}

/// A type whose arrays PostgreSQL can hold, naming the array type (`int8[]` for `Int`).
public protocol PostgresArrayElement: PostgresEncodable {
    /// The array type whose elements are `postgresDataType`.
    static var postgresArrayDataType: PostgresDataType { get }
}

/// One bound parameter: its type and its bytes (nil is SQL NULL).
public struct PostgresBind: Sendable {
    /// How the bytes are formatted.
    public enum Format: Sendable { case text, binary }
    /// The declared type (OID 0 lets the server infer it).
    public var type: PostgresDataType
    /// The encoded value; nil for NULL.
    public var bytes: [UInt8]?
    /// Text or binary.
    public var format: Format

    /// Encodes a value, or NULL when it is nil.
    public init<Value: PostgresEncodable>(_ value: Value?) throws(PostgresError) {
        self.type = Value.postgresDataType
        guard let value else {
            self.bytes = nil
            self.format = .text
            return
        }
        if let binary = value.postgresBinary() {
            self.bytes = binary
            self.format = .binary
        } else {
            let text = try value.postgresText()
            if text.utf8.contains(0) {
                throw PostgresError(code: .encoding, message: "a \(Value.self) parameter contains a NUL byte, which PostgreSQL text cannot hold; send it as bytes (bytea) instead")
            }
            self.bytes = Array(text.utf8)
            self.format = .text
        }
    }
}
