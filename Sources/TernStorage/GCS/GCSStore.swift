public import Foundation
import TernCrypto

/// A Google Cloud Storage bucket (or a prefix of one): `gs://bucket/prefix`, over the JSON API.
///
/// Small puts are multipart uploads carrying the object's CRC32C in its metadata, which GCS checks
/// against the bytes it received; Tern also compares the CRC32C GCS reports with its own. Large puts
/// are resumable uploads whose session URI is the ``LargeUpload/uploadID`` the caller persists.
/// The object's generation is its ``ObjectInfo/version``, and reads pin it, so a download that
/// resumes after a broken connection never mixes bytes of two generations.
///
/// The endpoint is ``StoreOptions/endpoint``, else `STORAGE_EMULATOR_HOST` (`host:port` means
/// plain http), else `https://storage.googleapis.com`. Credentials: see ``GoogleCredentials``.
public struct GCSStore: BlobStore {
    public let url: StoreURL
    /// The JSON API's base: scheme, host, port and an optional path prefix.
    public let endpoint: HTTPURL
    public let tokens: GoogleAccessTokens
    let transport: StoreTransport
    /// Objects asked for per list page (the JSON API returns at most 1,000).
    public var listPageSize = 1000

    static let publicEndpoint = "https://storage.googleapis.com"
    static let objectFields = "name,size,generation,crc32c"

    public init(url: StoreURL, options: StoreOptions) throws(StoreError) {
        try self.init(url: url, options: options, now: { Date() })
    }

    /// - Parameter now: the wall clock the access-token cache and JWTs use (injected by tests).
    public init(url: StoreURL, options: StoreOptions, now: @escaping @Sendable () -> Date) throws(StoreError) {
        guard url.scheme == .gs else {
            throw StoreError(.invalidURL, store: url.description, message: "not a gs:// URL")
        }
        self.url = url
        endpoint = try Self.endpoint(options: options, store: url.description)
        let credentials = try GoogleCredentials.resolve(options: options, store: url.description)
        tokens = GoogleAccessTokens(credentials: credentials, client: options.client, retry: options.retry, store: url.description, now: now)
        transport = StoreTransport(client: options.client, retry: options.retry, store: url.description, describe: ErrorBody.googleJSON)
    }

    /// ``StoreOptions/endpoint``, else `STORAGE_EMULATOR_HOST`, else the public endpoint.
    static func endpoint(options: StoreOptions, store: String) throws(StoreError) -> HTTPURL {
        let configured = [options.endpoint, options.environment["STORAGE_EMULATOR_HOST"]].compactMap { $0 }.first { !$0.isEmpty }
        var text = configured ?? publicEndpoint
        // Emulators are usually given as host:port, which Google's libraries read as plain http.
        if !text.contains("://") { text = "http://" + text }
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = HTTPURL(string: text), parsed.query.isEmpty else {
            throw StoreError(.invalidURL, store: store, message: "the GCS endpoint \(StoreURL.redacted(text)) is not an http(s)://host[:port][/path] URL")
        }
        return parsed
    }

    // MARK: Requests

    private var basePath: String { endpoint.path == "/" ? "" : endpoint.path }
    var bucketPath: String { "/storage/v1/b/\(PercentEncoding.encode(url.bucket))" }
    func objectPath(_ name: String) -> String { "\(bucketPath)/o/\(PercentEncoding.encode(name))" }

    func request(
        _ method: String, _ path: String, _ query: [(String, String)] = [], authorization: String?,
        headers: [(String, String)] = [], body: BlobSource? = nil, idempotent: Bool? = nil
    ) -> HTTPRequest {
        let target = HTTPURL(secure: endpoint.secure, host: endpoint.host, port: endpoint.port,
                             path: basePath + path, query: PercentEncoding.query(query))
        var fields = HTTPHeaders(headers)
        if let authorization { fields.add("Authorization", authorization) }
        return HTTPRequest(method: method, url: target, headers: fields, body: body, idempotent: idempotent)
    }

    /// Sends what `build` makes (with the current token), retrying per the policy; after a 401 the
    /// token is renewed once and the request sent again.
    func send(
        key: String?, accept: Set<Int> = [],
        build: @escaping @Sendable (String?) throws(StoreError) -> HTTPRequest
    ) async throws(StoreError) -> HTTPResponse {
        let authorization = try await tokens.authorization()
        do {
            return try await transport.perform(key: key, accept: accept) { () throws(StoreError) -> HTTPRequest in try build(authorization) }
        } catch where error.status == 401 && authorization != nil {
            await tokens.invalidate(authorization!)
            let renewed = try await tokens.authorization()
            return try await transport.perform(key: key, accept: accept) { () throws(StoreError) -> HTTPRequest in try build(renewed) }
        }
    }

    /// The full object name of `key`, after checking it is a key every Tern store accepts.
    func objectName(_ key: String) throws(StoreError) -> String {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "a key must be a relative path without empty, . or .. segments")
        }
        guard !key.contains("\r"), !key.contains("\n") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "GCS object names cannot hold line breaks")
        }
        let name = url.objectName(key)
        guard name.utf8.count <= 1024 else {
            throw StoreError(.rejected, store: url.description, key: key, message: "GCS object names are at most 1,024 bytes of UTF-8")
        }
        return name
    }

    // MARK: BlobStore

    public func head(_ key: String) async throws(StoreError) -> ObjectInfo? {
        let name = try objectName(key)
        let response = try await send(key: key, accept: [404]) { authorization in
            request("GET", objectPath(name), [("fields", Self.objectFields)], authorization: authorization)
        }
        if response.status == 404 { return nil }
        return try objectInfo(decode(GCSObjectResource.self, response, key: key, what: "object"), key: key)
    }

    @discardableResult
    public func put(_ key: String, from source: BlobSource, options: PutOptions) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        let contentType = try self.contentType(options, key: key)
        let crc: UInt32
        if let given = options.crc32c {
            crc = given
        } else {
            crc = try await source.crc32c(store: url.description, key: key)
        }
        // multipart/related: the metadata (with the CRC32C GCS checks) then the bytes, the file streamed
        // between the two framing buffers.
        let boundary = "tern-" + Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
        let metadata = GoogleJSON.object([
            ("name", GoogleJSON.quote(name)), ("contentType", GoogleJSON.quote(contentType)),
            ("crc32c", GoogleJSON.quote(CRC32C.base64Encoded(crc))),
        ])
        let prefix = Array(("--\(boundary)\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n\(metadata)\r\n"
            + "--\(boundary)\r\nContent-Type: \(contentType)\r\n\r\n").utf8)
        let suffix = Array("\r\n--\(boundary)--\r\n".utf8)
        let query = [("uploadType", "multipart")] + (options.createOnly ? [("ifGenerationMatch", "0")] : [])
        let tries = GCSTryCounter()
        let response: HTTPResponse
        do {
            response = try await send(key: key) { authorization in
                tries.increment()
                // Writing the same bytes to the same name again has the same effect: safe to retry.
                var upload = request("POST", "/upload\(bucketPath)/o", query, authorization: authorization,
                                     headers: [("Content-Type", "multipart/related; boundary=\(boundary)")], body: source, idempotent: true)
                upload.bodyPrefix = prefix
                upload.bodySuffix = suffix
                upload.progress = options.progress
                return upload
            }
        } catch where error.status == 412 && options.createOnly {
            // A retry after a lost answer finds its own first try's object: that is success.
            if tries.value > 1, let existing = try await head(key), existing.size == source.length, existing.crc32c == crc {
                return existing
            }
            throw StoreError(.alreadyExists, store: url.description, key: key, status: 412, code: error.code, message: "an object already exists (create-only put)")
        } catch {
            throw integrityError(error) ?? error
        }
        guard let info = try objectInfo(decode(GCSObjectResource.self, response, key: key, what: "uploaded object"), key: key) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "GCS answered the upload without the object")
        }
        try await check(info, size: source.length, crc32c: crc)
        return info
    }

    /// The content type sent with an upload.
    func contentType(_ options: PutOptions, key: String) throws(StoreError) -> String {
        let type = options.contentType ?? "application/octet-stream"
        guard !type.contains("\r"), !type.contains("\n") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "the content type holds a line break")
        }
        return type
    }

    /// GCS's refusal of bytes whose checksum does not match the metadata's, as an integrity error.
    func integrityError(_ error: StoreError) -> StoreError? {
        guard error.status == 400, error.message.lowercased().contains("crc32c") else { return nil }
        var failure = error
        failure.kind = .integrity
        return failure
    }

    /// Compares what GCS stored with what was sent. A mismatch (which GCS itself refuses; emulators
    /// may not) deletes that generation, so no object with wrong bytes stays behind.
    func check(_ info: ObjectInfo, size: Int64, crc32c: UInt32) async throws(StoreError) {
        guard info.size != size || info.crc32c != crc32c else { return }
        if let generation = info.version {
            let name = url.objectName(info.key)
            _ = try? await send(key: info.key, accept: [404, 412]) { authorization in
                request("DELETE", objectPath(name), [("ifGenerationMatch", generation)], authorization: authorization)
            }
        }
        let stored = info.crc32c.map(crc32cHex) ?? "none"
        throw StoreError(.integrity, store: url.description, key: info.key,
                         message: "GCS stored \(info.size) bytes with CRC32C \(stored), Tern sent \(size) bytes with CRC32C \(crc32cHex(crc32c)); the object was deleted")
    }

    @discardableResult
    public func get(_ key: String, range: Range<Int64>?, into sink: any BlobSink) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        let (info, pinned) = try await PinnedRead.prepare(self, key: key, range: range, noun: "object", versionName: "generation", storeName: "GCS")
        guard let pinned else { return info }
        let wanted = pinned.range
        let generation = pinned.version
        let counting = CountingSink(sink)
        var authorization = try await tokens.authorization()
        var renewed = false
        while true {
            let start = wanted.lowerBound + counting.count
            let current = authorization
            do {
                // The generation pins the bytes: a resumed read never mixes two versions of the object.
                _ = try await transport.download(key: key, range: start..<wanted.upperBound, into: counting) { from, to throws(StoreError) in
                    var download = request("GET", objectPath(name), [("alt", "media"), ("generation", generation)], authorization: current)
                    download.headers.add("Range", "bytes=\(from)-\((to ?? info.size) - 1)")
                    return download
                }
                return info
            } catch where error.status == 401 && current != nil && !renewed {
                await tokens.invalidate(current!)
                authorization = try await tokens.authorization()
                renewed = true
            } catch where error.kind == .notFound {
                throw StoreError(.preconditionFailed, store: url.description, key: key, status: 404, code: error.code,
                                 message: "generation \(generation) is gone: the object was replaced or deleted while being read")
            }
        }
    }

    public func list(prefix: String) async throws(StoreError) -> [ObjectInfo] {
        let fullPrefix = url.prefix.isEmpty ? prefix : "\(url.prefix)/\(prefix)"
        var results: [ObjectInfo] = []
        var pageToken: String?
        repeat {
            var query = [("maxResults", "\(listPageSize)"), ("fields", "nextPageToken,items(\(Self.objectFields))")]
            if !fullPrefix.isEmpty { query.append(("prefix", fullPrefix)) }
            if let pageToken { query.append(("pageToken", pageToken)) }
            let pageQuery = query
            let response = try await send(key: prefix) { authorization in
                request("GET", "\(bucketPath)/o", pageQuery, authorization: authorization)
            }
            let page = try decode(GCSObjectList.self, response, key: prefix, what: "object list")
            for item in page.items ?? [] {
                if let info = try objectInfo(item), info.key.hasPrefix(prefix) { results.append(info) }
            }
            pageToken = page.nextPageToken.flatMap { $0.isEmpty ? nil : $0 }
        } while pageToken != nil
        return results.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    public func delete(_ key: String) async throws(StoreError) {
        let name = try objectName(key)
        _ = try await send(key: key, accept: [404]) { authorization in
            request("DELETE", objectPath(name), authorization: authorization)
        }
    }

    @discardableResult
    public func copy(from sourceKey: String, to key: String) async throws(StoreError) -> ObjectInfo {
        let sourceName = try objectName(sourceKey)
        let name = try objectName(key)
        let path = "\(objectPath(sourceName))/rewriteTo/b/\(PercentEncoding.encode(url.bucket))/o/\(PercentEncoding.encode(name))"
        var rewriteToken: String?
        // objects.rewrite copies in steps for large objects across locations or storage classes;
        // each answer carries the token for the next call.
        while true {
            let query = rewriteToken.map { [("rewriteToken", $0)] } ?? []
            let response = try await send(key: sourceKey) { authorization in
                request("POST", path, query, authorization: authorization, idempotent: true)
            }
            let rewrite = try decode(GCSRewriteResponse.self, response, key: key, what: "rewrite answer")
            if rewrite.done {
                guard let resource = rewrite.resource, let info = try objectInfo(resource, key: key) else {
                    throw StoreError(.rejected, store: url.description, key: key, message: "GCS finished the copy without describing the object")
                }
                return info
            }
            guard let next = rewrite.rewriteToken, !next.isEmpty else {
                throw StoreError(.rejected, store: url.description, key: key, message: "GCS answered an unfinished copy without a rewrite token")
            }
            rewriteToken = next
        }
    }
}

/// Counts the tries of a request (its build closure runs once per try).
final class GCSTryCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
