/// Header fields in order, looked up without regard to case.
public struct HTTPHeaders: Sendable, Hashable, Sequence {
    public private(set) var fields: [Field]

    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        let lowered = name.lowercased()
        return fields.first { $0.name.lowercased() == lowered }?.value
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        let lowered = name.lowercased()
        return fields.filter { $0.name.lowercased() == lowered }.map(\.value)
    }

    public mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces every field called `name` with one holding `value`.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        let lowered = name.lowercased()
        fields.removeAll { $0.name.lowercased() == lowered }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
}

/// An absolute http or https URL, split the way a request needs it.
public struct HTTPURL: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var host: String
    public var port: Int
    /// Already percent-encoded path, starting with `/`.
    public var path: String
    /// Already percent-encoded query, without `?`; empty for none.
    public var query: String

    public init(secure: Bool, host: String, port: Int? = nil, path: String, query: String = "") {
        self.secure = secure
        self.host = host
        self.port = port ?? (secure ? 443 : 80)
        self.path = path.isEmpty ? "/" : path
        self.query = query
    }

    /// Parses `http[s]://host[:port][/path][?query]`; the path and query must already be encoded.
    public init?(string: String) {
        let secure: Bool
        var rest: Substring
        if string.hasPrefix("https://") {
            secure = true
            rest = string.dropFirst(8)
        } else if string.hasPrefix("http://") {
            secure = false
            rest = string.dropFirst(7)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = String(authority)
        var port: Int?
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else { return nil }
            port = number
            host = String(authority[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var path = String(rest)
        var query = ""
        if let question = path.firstIndex(of: "?") {
            query = String(path[path.index(after: question)...])
            path = String(path[..<question])
        }
        self.init(secure: secure, host: host, port: port, path: path, query: query)
    }

    /// The request target: path plus query.
    public var target: String { query.isEmpty ? path : "\(path)?\(query)" }

    /// The `Host` header value: the port only when it is not the scheme's default.
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Without the query, which may hold a signature or SAS token.
    public var description: String { "\(secure ? "https" : "http")://\(hostHeader)\(path)" }
}

/// One request. The client adds `Host` and `Content-Length`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: HTTPURL
    public var headers: HTTPHeaders
    public var body: BlobSource?
    /// Whether sending it twice has the same effect as once. Only such requests are retried when a
    /// connection fails after the request may have reached the server.
    public var idempotent: Bool
    /// Counts body bytes as they go out.
    public var progress: TransferProgress?
    /// Bytes sent before and after `body`: the framing of a multipart upload around a file range,
    /// so the file is still streamed rather than copied into one buffer.
    public var bodyPrefix: [UInt8] = []
    public var bodySuffix: [UInt8] = []

    /// The `Content-Length` the request is sent with; nil when it has no body at all.
    public var contentLength: Int64? {
        if body == nil && bodyPrefix.isEmpty && bodySuffix.isEmpty { return nil }
        return (body?.length ?? 0) + Int64(bodyPrefix.count + bodySuffix.count)
    }

    public init(
        method: String, url: HTTPURL, headers: HTTPHeaders = HTTPHeaders(), body: BlobSource? = nil,
        idempotent: Bool? = nil, progress: TransferProgress? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.idempotent = idempotent ?? ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains(method)
        self.progress = progress
    }
}

/// A response. `body` holds the bytes unless they were streamed into a sink.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public var isSuccess: Bool { (200..<300).contains(status) }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A failure below HTTP: connecting, TLS, the socket, a local file, or a malformed answer.
public struct HTTPError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case connect, timeout, reset, tls, malformed, localFile, sink
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }

    /// Failures a new connection may not repeat. A TLS verification failure, a local file that
    /// cannot be read and a sink that refused bytes are not.
    public var isTransient: Bool {
        switch kind {
        case .connect, .timeout, .reset, .malformed: true
        case .tls, .localFile, .sink: false
        }
    }
}
