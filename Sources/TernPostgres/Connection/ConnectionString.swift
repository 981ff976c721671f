internal import CLibPQ

/// Reads a libpq connection string (a `postgres://` URL or `key=value` pairs) with libpq's own
/// parser, so Tern accepts exactly what libpq accepts and can describe a target without its secrets.
public enum PostgresConnectionString {
    /// The options a connection string sets, password excluded; throws when libpq cannot parse it.
    public static func options(_ connectionString: String) throws(PostgresError) -> [String: String] {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(connectionString, &errorMessage) else {
            var reason = "libpq could not parse it"
            if let errorMessage {
                reason = String(cString: errorMessage).trimmingTrailingNewlines
                PQfreemem(errorMessage)
            }
            // The reason quotes a key name at most, never the value of a password.
            throw PostgresError(code: .invalidConnectionString, message: "invalid PostgreSQL connection string: \(reason)")
        }
        defer { PQconninfoFree(parsed) }
        var options: [String: String] = [:]
        var cursor = parsed
        while let keyword = cursor.pointee.keyword {
            let key = String(cString: keyword)
            if let value = cursor.pointee.val, key != "password" {
                options[key] = String(cString: value)
            }
            cursor += 1
        }
        return options
    }

    /// `host=/tmp/x port=5432 dbname=tern user=postgres`: enough to tell which server, never a secret.
    public static func summary(_ connectionString: String) -> String {
        guard let options = try? options(connectionString) else { return "(an unparsable connection string)" }
        let keys = ["host", "hostaddr", "port", "dbname", "user", "sslmode"]
        let parts = keys.compactMap { key in options[key].map { "\(key)=\($0)" } }
        return parts.isEmpty ? "(libpq defaults)" : parts.joined(separator: " ")
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while let last = text.last, last.isNewline || last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
