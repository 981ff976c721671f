/// An error from the PostgreSQL client: a server error with its SQLSTATE and fields, a connection
/// problem, or a value that could not be encoded or decoded.
///
/// `description` is written for a person: what failed and, where PostgreSQL gave one, its detail
/// and hint. It never holds a password or a full connection string, and never a bound value.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; extensible without breaking callers that switch on it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        /// The connection could not be established (bad host, socket, credentials, database).
        public static let connectionFailed = Code(raw: "connection failed")
        /// The connection broke during use; the pool discards such a connection.
        public static let connectionClosed = Code(raw: "connection closed")
        /// The server rejected the statement; `sqlState` says why.
        public static let server = Code(raw: "server error")
        /// The query was cancelled, by task cancellation or by the server (SQLSTATE 57014).
        public static let queryCancelled = Code(raw: "query cancelled")
        /// A column could not be decoded into the requested Swift type.
        public static let decoding = Code(raw: "decoding failed")
        /// A Swift value could not be sent as a parameter.
        public static let encoding = Code(raw: "encoding failed")
        /// The server or libpq answered something this client did not expect.
        public static let protocolViolation = Code(raw: "protocol violation")
        /// The pool was closed while the caller waited for or asked for a connection.
        public static let poolClosed = Code(raw: "pool closed")
        /// The connection string could not be understood.
        public static let invalidConnectionString = Code(raw: "invalid connection string")
        /// A migration file or the migration history is inconsistent.
        public static let migration = Code(raw: "migration error")
        /// The embedded cluster could not be set up, started or stopped.
        public static let embeddedCluster = Code(raw: "embedded PostgreSQL error")
    }

    /// The kind of failure.
    public var code: Code
    /// The primary, human-readable message.
    public var message: String
    /// Five-character SQLSTATE for server errors (`23505` is a unique violation).
    public var sqlState: String?
    /// PostgreSQL's DETAIL field.
    public var detail: String?
    /// PostgreSQL's HINT field.
    public var hint: String?
    /// The constraint a violation names.
    public var constraint: String?
    /// The table a violation names.
    public var table: String?
    /// The column a violation names.
    public var column: String?
    /// The statement's SQL text (never its bound values), when the error came from a statement.
    public var query: String?

    /// Makes an error; most fields are filled only for server errors.
    public init(
        code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil,
        constraint: String? = nil, table: String? = nil, column: String? = nil, query: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.column = column
        self.query = query
    }

    /// True for errors a transaction may be retried after: serialization failure and deadlock.
    public var isTransient: Bool {
        sqlState == "40001" || sqlState == "40P01"
    }

    public var description: String {
        var text: String
        if let sqlState {
            text = "PostgreSQL \(sqlState): \(message)"
        } else {
            text = "\(code): \(message)"
        }
        if let detail, !detail.isEmpty { text += "\nDETAIL: \(detail)" }
        if let hint, !hint.isEmpty { text += "\nHINT: \(hint)" }
        if let constraint { text += "\nCONSTRAINT: \(constraint)" }
        return text
    }
}
