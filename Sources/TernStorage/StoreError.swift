/// Why a store operation failed, naming the store, the key, the HTTP status and the store's own
/// error code. Never carries a credential: request headers and query strings are not kept.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// The URL of a store is malformed or names an unknown scheme.
        case invalidURL
        /// Credentials are missing or unreadable (which source was tried is in the message).
        case credentials
        /// The store refused the credentials or the signature (401/403).
        case unauthorized
        case notFound
        /// A create-only put found an object already there.
        case alreadyExists
        /// A condition on the object's version failed: it changed behind Tern's back.
        case preconditionFailed
        /// Bytes do not match their checksum, or the store's checksum does not match ours.
        case integrity
        /// Still failing after the retries: 5xx, throttling, resets, timeouts.
        case transient
        /// The store has no such operation (for example server-side copy).
        case unsupported
        /// A local file could not be read or written.
        case io
        /// The store answered something Tern cannot interpret, or refused the request (other 4xx).
        case rejected
    }

    public var kind: Kind
    /// The store's URL (safe to print).
    public var store: String
    public var key: String?
    public var status: Int?
    /// The store's error code (`SignatureDoesNotMatch`, `PreconditionFailed`, …).
    public var code: String?
    public var message: String

    public init(_ kind: Kind, store: String, key: String? = nil, status: Int? = nil, code: String? = nil, message: String) {
        self.kind = kind
        self.store = store
        self.key = key
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String {
        var text = store
        if let key { text += " key \(key)" }
        text += ": "
        if let status { text += "HTTP \(status) " }
        if let code { text += "\(code): " }
        return text + message
    }

    /// Whether trying the same request again may succeed.
    public var isTransient: Bool { kind == .transient }
}
