import Foundation

/// A SQL statement and its bound parameters, built by string interpolation.
///
/// Every interpolated value becomes a `$n` placeholder and a bound parameter, never SQL text:
///
/// ```swift
/// let rows = try await db.query("SELECT id FROM jobs WHERE name = \(name) AND state = ANY(\(states))")
/// ```
///
/// A plain `String` variable cannot become a query; only literals and interpolations can, so SQL
/// injection is impossible by construction. Identifiers go through `\(identifier: name)`, which
/// quotes them; trusted SQL held in a variable (a migration file) needs the explicit
/// `PostgresQuery(unsafeSQL:)`.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The SQL text with `$1`, `$2`... placeholders.
    public private(set) var sql: String
    /// The parameters, in placeholder order.
    public private(set) var binds: [PostgresBind]
    /// An interpolated value that could not be encoded; reported when the query runs.
    var encodingError: PostgresError?

    /// A query from SQL the caller vouches for (a migration file, a generated statement).
    public init(unsafeSQL sql: String) {
        self.sql = sql
        self.binds = []
    }

    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.sql = stringInterpolation.sql
        self.binds = stringInterpolation.binds
        self.encodingError = stringInterpolation.encodingError
    }

    /// The SQL and the types of its parameters; values are left out on purpose (they may be secrets).
    public var description: String {
        binds.isEmpty ? sql : "\(sql) -- \(binds.count) parameter(s): \(binds.map(\.type.description).joined(separator: ", "))"
    }

    /// Builds the SQL text and the bind list as the literal is read.
    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PostgresBind] = []
        var encodingError: PostgresError?

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// Binds a value as the next parameter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            appendBind(value)
        }

        /// Binds a value, or NULL when it is nil.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            appendBind(value)
        }

        /// Inserts a quoted identifier (a table or column name), with embedded quotes doubled.
        public mutating func appendInterpolation(identifier: String) {
            sql += "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }

        /// Inserts SQL text as is. Only for text the program itself owns, never for input.
        public mutating func appendInterpolation(unsafeSQL text: String) {
            sql += text
        }

        /// Inserts another query, its placeholders renumbered after this one's and its parameters
        /// appended: statements built from program-owned pieces stay fully parameterised.
        public mutating func appendInterpolation(fragment: PostgresQuery) {
            if encodingError == nil { encodingError = fragment.encodingError }
            sql += PostgresQuery.renumberPlaceholders(fragment.sql, by: binds.count)
            binds += fragment.binds
        }

        private mutating func appendBind<Value: PostgresEncodable>(_ value: Value?) {
            do {
                binds.append(try PostgresBind(value))
            } catch {
                if encodingError == nil { encodingError = error }
                binds.append(PostgresBind(nullOf: Value.postgresDataType))
            }
            sql += "$\(binds.count)"
        }
    }
}

extension PostgresBind {
    /// A NULL of the given type.
    init(nullOf type: PostgresDataType) {
        self.type = type
        self.bytes = nil
        self.format = .text
    }
}

extension PostgresQuery {
    /// `sql` with every `$n` placeholder (outside quoted text) shifted by `offset`.
    static func renumberPlaceholders(_ sql: String, by offset: Int) -> String {
        guard offset > 0 else { return sql }
        var result = ""
        var characters = Array(sql)[...]
        var quote: Character?
        while let character = characters.popFirst() {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
                continue
            }
            if character == "'" || character == "\"" {
                quote = character
                result.append(character)
                continue
            }
            if character == "$", let first = characters.first, first.isASCII, first.isNumber {
                let digits = characters.prefix { $0.isASCII && $0.isNumber }
                characters = characters.dropFirst(digits.count)
                result += "$\(Int(String(digits))! + offset)"
                continue
            }
            result.append(character)
        }
        return result
    }
}
