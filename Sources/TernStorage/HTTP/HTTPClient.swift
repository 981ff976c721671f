public import Foundation

/// A small HTTP/1.1 client for object stores: keep-alive connections pooled per host, request
/// bodies streamed from a file range (sendfile(2) on plain connections), response bodies streamed
/// into a ``BlobSink``, TLS through OpenSSL with verification always on.
///
/// Each request runs on a thread of its own (``Blocking``), so transfers in parallel never starve
/// Swift's cooperative pool. It does not retry on HTTP statuses (the stores decide that); it only
/// repeats an idempotent request once when a pooled connection turns out to have been closed by the
/// server while idle.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: Duration = .seconds(10)
        /// Longest wait for any single read or write on the socket.
        public var ioTimeout: Duration = .seconds(120)
        /// Idle connections kept per host.
        public var maxIdlePerHost = 16
        /// A PEM file of trusted CAs; the system store when nil.
        public var caBundle: String?
        /// Largest non-streamed response body accepted.
        public var maxBufferedBody = 64 << 20

        public init() {}

        /// The CA bundle from `AWS_CA_BUNDLE` or `SSL_CERT_FILE`, when set.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Configuration {
            var configuration = Configuration()
            configuration.caBundle = [environment["AWS_CA_BUNDLE"], environment["SSL_CERT_FILE"]]
                .compactMap { $0 }.first { !$0.isEmpty }
            return configuration
        }
    }

    private let configuration: Configuration
    private let pool = ConnectionPool()
    private let tls: TLSContextHolder

    public init(configuration: Configuration = .fromEnvironment()) {
        self.configuration = configuration
        tls = TLSContextHolder(caBundle: configuration.caBundle)
    }

    /// Sends `request`; a 2xx body goes into `sink` when one is given, any other body is returned.
    public func execute(_ request: HTTPRequest, sink: (any BlobSink)? = nil) async throws(HTTPError) -> HTTPResponse {
        try await Blocking.run { () throws(HTTPError) -> HTTPResponse in
            try self.send(request, sink: sink)
        }
    }

    /// The blocking form of ``execute(_:sink:)``, for callers already on a thread of their own.
    public func send(_ request: HTTPRequest, sink: (any BlobSink)? = nil) throws(HTTPError) -> HTTPResponse {
        var connection = try checkout(request.url)
        var answered = false
        do {
            return try exchange(request, on: connection, sink: sink, answered: &answered)
        } catch {
            // A pooled connection the server closed while idle fails at once; a fresh one is worth
            // one more try when repeating the request is harmless. Not once an answer began: its
            // bytes may already be in the sink.
            guard connection.reused, !answered, request.idempotent, error.kind == .reset || error.kind == .malformed else { throw error }
            connection = try open(request.url)
            return try exchange(request, on: connection, sink: sink, answered: &answered)
        }
    }

    private func checkout(_ url: HTTPURL) throws(HTTPError) -> HTTPConnection {
        if let idle = pool.take(HTTPConnection.poolKey(url)) {
            idle.reused = true
            return idle
        }
        return try open(url)
    }

    private func open(_ url: HTTPURL) throws(HTTPError) -> HTTPConnection {
        let context = url.secure ? try tls.context() : nil
        return try HTTPConnection.open(url, tls: context, connectTimeout: configuration.connectTimeout, ioTimeout: configuration.ioTimeout)
    }

    private func exchange(
        _ request: HTTPRequest, on connection: HTTPConnection, sink: (any BlobSink)?, answered: inout Bool
    ) throws(HTTPError) -> HTTPResponse {
        try writeHead(request, to: connection)
        if !request.bodyPrefix.isEmpty {
            try httpTyped { try request.bodyPrefix.withUnsafeBytes { raw in try connection.write(raw) } }
        }
        switch request.body {
        case nil:
            break
        case .bytes(let bytes):
            try httpTyped { try bytes.withUnsafeBytes { raw in try connection.write(raw) } }
            request.progress?.add(Int64(bytes.count))
        case .file(let path, let offset, let length):
            try connection.sendFile(path: path, offset: offset, length: length, progress: request.progress)
        }
        if !request.bodySuffix.isEmpty {
            try httpTyped { try request.bodySuffix.withUnsafeBytes { raw in try connection.write(raw) } }
        }

        var (status, headers) = try readHead(connection)
        answered = true
        while (100..<200).contains(status) {
            (status, headers) = try readHead(connection)
        }
        var response = HTTPResponse(status: status, headers: headers, body: [])
        let streamTo = (200..<300).contains(status) ? sink : nil
        var buffered: [UInt8] = []
        let limit = configuration.maxBufferedBody
        let consume = { (bytes: UnsafeRawBufferPointer) throws(HTTPError) in
            if let streamTo {
                do {
                    try streamTo.write(bytes)
                } catch {
                    throw HTTPError(.sink, "\(error)")
                }
            } else {
                guard buffered.count + bytes.count <= limit else {
                    throw HTTPError(.malformed, "a response body over \(limit) bytes was not expected")
                }
                buffered.append(contentsOf: bytes)
            }
        }
        let reusable = try readBody(request, status: status, headers: headers, connection: connection, consume: consume)
        response.body = buffered
        if reusable { pool.put(connection, limit: configuration.maxIdlePerHost) }
        return response
    }

    private func writeHead(_ request: HTTPRequest, to connection: HTTPConnection) throws(HTTPError) {
        var head = "\(request.method) \(request.url.target) HTTP/1.1\r\nHost: \(request.url.hostHeader)\r\n"
        for field in request.headers where field.name.lowercased() != "host" && field.name.lowercased() != "content-length" {
            guard !field.value.contains("\r"), !field.value.contains("\n") else {
                throw HTTPError(.malformed, "header \(field.name) holds a line break")
            }
            head += "\(field.name): \(field.value)\r\n"
        }
        if let length = request.contentLength {
            head += "Content-Length: \(length)\r\n"
        } else if ["PUT", "POST"].contains(request.method) {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        try connection.write(head)
    }

    private func readHead(_ connection: HTTPConnection) throws(HTTPError) -> (Int, HTTPHeaders) {
        guard let statusLine = try connection.readLine() else {
            throw HTTPError(.reset, "the server closed the connection before answering")
        }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HTTPError(.malformed, "not an HTTP status line: \(statusLine.prefix(80))")
        }
        var headers = HTTPHeaders()
        while let line = try connection.readLine(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPError(.malformed, "not a header line: \(line.prefix(80))") }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (status, headers)
    }

    /// Reads the body by its framing; returns whether the connection can carry another request.
    private func readBody(
        _ request: HTTPRequest, status: Int, headers: HTTPHeaders, connection: HTTPConnection,
        consume: (UnsafeRawBufferPointer) throws(HTTPError) -> Void
    ) throws(HTTPError) -> Bool {
        let keepAlive = headers["Connection"]?.lowercased() != "close"
        if request.method == "HEAD" || status == 204 || status == 304 {
            return keepAlive
        }
        if let encoding = headers["Transfer-Encoding"], encoding.lowercased().contains("chunked") {
            while true {
                guard let sizeLine = try connection.readLine() else { throw HTTPError(.reset, "the connection closed inside a chunked body") }
                let sizeText = sizeLine.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard let size = Int64(sizeText, radix: 16), size >= 0 else { throw HTTPError(.malformed, "bad chunk size \(sizeLine.prefix(40))") }
                if size == 0 {
                    while let trailer = try connection.readLine(), !trailer.isEmpty {}
                    return keepAlive
                }
                try connection.readExactly(size, consume)
                _ = try connection.readLine()
            }
        }
        if let lengthText = headers["Content-Length"] {
            guard let length = Int64(lengthText), length >= 0 else { throw HTTPError(.malformed, "bad Content-Length \(lengthText.prefix(40))") }
            try connection.readExactly(length, consume)
            return keepAlive
        }
        try connection.readToEnd(consume)
        return false
    }
}

/// Idle connections by host.
private final class ConnectionPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [String: [HTTPConnection]] = [:]

    func take(_ key: String) -> HTTPConnection? {
        lock.withLock { idle[key]?.popLast() }
    }

    func put(_ connection: HTTPConnection, limit: Int) {
        lock.withLock {
            var list = idle[connection.key, default: []]
            if list.count < limit { list.append(connection) }
            idle[connection.key] = list
        }
    }
}

/// Makes the TLS context on first use, so a client that only speaks plain HTTP never loads the
/// trust store, and a bad CA bundle is reported by the first https request.
private final class TLSContextHolder: @unchecked Sendable {
    private let lock = NSLock()
    private let caBundle: String?
    private var made: Result<TLSContext, HTTPError>?

    init(caBundle: String?) {
        self.caBundle = caBundle
    }

    func context() throws(HTTPError) -> TLSContext {
        let result = lock.withLock { () -> Result<TLSContext, HTTPError> in
            if let made { return made }
            let result: Result<TLSContext, HTTPError>
            do throws(HTTPError) {
                result = .success(try TLSContext(caBundle: caBundle))
            } catch {
                result = .failure(error)
            }
            made = result
            return result
        }
        return try result.get()
    }
}
