import Foundation

/// What the HTTP stores (S3, GCS, Azure) share: sending a freshly signed request per try, retrying
/// what is safe to retry, turning statuses into ``StoreError``s, and resuming an interrupted
/// download from the byte it reached.
public struct StoreTransport: Sendable {
    public let client: HTTPClient
    public let retry: RetryPolicy
    /// The store's URL, for errors.
    public let store: String
    /// Reads the store's error code and message out of an error response.
    public let describe: @Sendable (HTTPResponse) -> (code: String?, message: String)

    public init(
        client: HTTPClient, retry: RetryPolicy, store: String,
        describe: @escaping @Sendable (HTTPResponse) -> (code: String?, message: String)
    ) {
        self.client = client
        self.retry = retry
        self.store = store
        self.describe = describe
    }

    /// Sends the request `build` makes (called again for every try, so signatures and dates are
    /// fresh) and returns the response when its status is 2xx or in `accept`.
    public func perform(
        key: String?, accept: Set<Int> = [], sink: (any BlobSink)? = nil,
        build: @Sendable () throws(StoreError) -> HTTPRequest
    ) async throws(StoreError) -> HTTPResponse {
        try await retry.run { () async throws(StoreError) -> HTTPResponse in
            let request = try build()
            let response: HTTPResponse
            do throws(HTTPError) {
                response = try await client.execute(request, sink: sink)
            } catch {
                throw failure(error, request: request, key: key)
            }
            if response.isSuccess || accept.contains(response.status) { return response }
            throw failure(response, request: request, key: key)
        }
    }

    /// Streams an object (or `range` of it) into `sink`; when a transfer breaks after some bytes
    /// arrived, the next try asks only for the rest, so no byte reaches the sink twice.
    /// `build(start, end)` makes a GET for bytes `start..<end` (`end` nil: to the end of the object).
    public func download(
        key: String, range: Range<Int64>?, into sink: any BlobSink,
        build: @Sendable @escaping (Int64, Int64?) throws(StoreError) -> HTTPRequest
    ) async throws(StoreError) -> HTTPResponse {
        let counting = CountingSink(sink)
        return try await retry.run { () async throws(StoreError) -> HTTPResponse in
            let start = (range?.lowerBound ?? 0) + counting.count
            if let range, start >= range.upperBound, counting.count > 0 {
                return HTTPResponse(status: 206, headers: HTTPHeaders(), body: [])
            }
            let request = try build(start, range?.upperBound)
            let response: HTTPResponse
            do throws(HTTPError) {
                response = try await client.execute(request, sink: counting)
            } catch {
                throw failure(error, request: request, key: key)
            }
            // 416 for a range starting at the end of an empty object: nothing to read.
            if response.status == 416 && start == 0 && (range?.isEmpty ?? true) { return response }
            if response.isSuccess { return response }
            throw failure(response, request: request, key: key)
        }
    }

    /// The error for a non-2xx response.
    public func failure(_ response: HTTPResponse, request: HTTPRequest, key: String?) -> StoreError {
        let (code, message) = describe(response)
        let kind: StoreError.Kind
        switch response.status {
        case 401, 403: kind = .unauthorized
        case 404: kind = .notFound
        case 409, 412: kind = .preconditionFailed
        // Throttling, and servers saying they did not process the request: always safe to retry.
        case 429, 503: kind = .transient
        // Other server errors may have done the work; repeat only what can be repeated.
        case 408, 500, 502, 504: kind = request.idempotent ? .transient : .rejected
        default: kind = .rejected
        }
        let detail = message.isEmpty ? "\(request.method) failed" : message
        return StoreError(kind, store: store, key: key, status: response.status, code: code, message: detail)
    }

    /// The error for a failure below HTTP.
    public func failure(_ error: HTTPError, request: HTTPRequest, key: String?) -> StoreError {
        let repeatable = error.isTransient && (request.idempotent || error.kind == .connect)
        let kind: StoreError.Kind
        switch error.kind {
        case .localFile: kind = .io
        case .sink: kind = .io
        case .tls: kind = .rejected
        default: kind = repeatable ? .transient : .rejected
        }
        return StoreError(kind, store: store, key: key, message: "\(request.method) \(request.url): \(error.message)")
    }
}

/// Passes bytes on and counts them, so a broken download can resume where it stopped.
final class CountingSink: BlobSink, @unchecked Sendable {
    private let inner: any BlobSink
    private let lock = NSLock()
    private var written: Int64 = 0

    init(_ inner: any BlobSink) {
        self.inner = inner
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try inner.write(bytes)
        lock.withLock { written += Int64(bytes.count) }
    }

    var count: Int64 { lock.withLock { written } }
}

/// Minimal readers for the error bodies stores send.
public enum ErrorBody {
    /// `<Code>…</Code>` and `<Message>…</Message>` of an S3 or Azure XML error.
    public static func xml(_ response: HTTPResponse) -> (code: String?, message: String) {
        let text = response.bodyText
        let code = XMLText.first("Code", in: text) ?? response.headers["x-ms-error-code"]
        return (code, XMLText.first("Message", in: text) ?? "")
    }

    /// `{"error": {"message": …, "errors": [{"reason": …}]}}` of a Google JSON error.
    public static func googleJSON(_ response: HTTPResponse) -> (code: String?, message: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let error = object["error"] as? [String: Any] else {
            return (nil, String(response.bodyText.prefix(200)))
        }
        let reason = (error["errors"] as? [[String: Any]])?.first?["reason"] as? String
        return (reason, error["message"] as? String ?? "")
    }
}

/// Just enough XML reading for store responses: the text of elements by name, entities decoded.
public enum XMLText {
    /// The text of the first `<name>` element.
    public static func first(_ name: String, in text: String) -> String? {
        all(name, in: text).first
    }

    /// The texts of every `<name>` element, in order.
    public static func all(_ name: String, in text: String) -> [String] {
        elements(name, in: text).map(decodeEntities)
    }

    /// The raw inner XML of every `<name>` element, for nested reads.
    public static func elements(_ name: String, in text: String) -> [String] {
        var results: [String] = []
        let open = "<\(name)>"
        let close = "</\(name)>"
        var searchStart = text.startIndex
        while let start = text.range(of: open, range: searchStart..<text.endIndex),
              let end = text.range(of: close, range: start.upperBound..<text.endIndex) {
            results.append(String(text[start.upperBound..<end.lowerBound]))
            searchStart = end.upperBound
        }
        return results
    }

    public static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#34;", with: "\"")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;")
            .replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
