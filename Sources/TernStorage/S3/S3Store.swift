public import Foundation
import TernCrypto

/// An S3 bucket (or a prefix of one): `s3://bucket/prefix`, on AWS or any S3-compatible endpoint
/// (MinIO, R2, moto), every request signed by Tern with ``SigV4``.
///
/// Puts carry the object's CRC32C in `x-amz-checksum-crc32c`, which S3 checks against the bytes it
/// received; bodies read from files are sent with `UNSIGNED-PAYLOAD` (hashing them with SHA-256 only
/// to sign would cost a second pass over every byte), small in-memory bodies are hashed and signed.
/// Large puts are multipart uploads with a full-object CRC32C (see `S3Store+Multipart.swift`).
/// The ETag is the object's ``ObjectInfo/version``, and reads pin it with `If-Match`, so a download
/// that resumes after a broken connection never mixes bytes of two objects.
///
/// Endpoint: ``StoreOptions/endpoint``, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else
/// `https://s3.<region>.amazonaws.com`. Region: ``StoreOptions/region``, else `AWS_REGION`, else
/// `AWS_DEFAULT_REGION`, else `us-east-1`. Addressing: path style (`endpoint/bucket/key`) for a custom
/// endpoint and for bucket names that are not valid host names (dots, underscores); virtual-host style
/// (`bucket.endpoint/key`) on AWS; `AWS_S3_FORCE_PATH_STYLE=true|false` overrides the default.
/// Credentials: see ``AWSCredentialsProvider``.
public struct S3Store: BlobStore {
    public let url: StoreURL
    /// The service's base: scheme, host, port and an optional path prefix.
    public let endpoint: HTTPURL
    public let region: String
    public let usesPathStyle: Bool
    public let credentials: AWSCredentialsProvider
    let signer: SigV4
    let transport: StoreTransport
    /// One try per call, for requests whose 200 answer may still carry an error (CompleteMultipartUpload,
    /// CopyObject): ``retry`` runs around the check instead.
    let singleTry: StoreTransport
    let retry: RetryPolicy
    let now: @Sendable () -> Date
    /// Keys asked for per list page (S3 returns at most 1,000).
    public var listPageSize = 1000
    /// Parts of a large upload sent at once.
    public var maxParallelParts = 4

    /// S3's largest single PUT.
    static let maxSinglePut: Int64 = 5 << 30
    /// In-memory bodies up to this size are hashed and signed; larger ones and files are not.
    static let hashedBodyLimit = 1 << 20

    public init(url: StoreURL, options: StoreOptions) throws(StoreError) {
        try self.init(url: url, options: options, now: { Date() })
    }

    /// - Parameter now: the wall clock requests are signed with and credential expiry is judged by.
    public init(url: StoreURL, options: StoreOptions, now: @escaping @Sendable () -> Date) throws(StoreError) {
        guard url.scheme == .s3 else {
            throw StoreError(.invalidURL, store: url.description, message: "not an s3:// URL")
        }
        self.url = url
        let store = url.description
        let resolved = try Self.resolve(options: options, bucket: url.bucket, store: store)
        endpoint = resolved.endpoint
        region = resolved.region
        usesPathStyle = resolved.pathStyle
        credentials = try AWSCredentialsProvider(options: options, store: store, now: now)
        signer = SigV4(region: region, service: "s3")
        transport = StoreTransport(client: options.client, retry: options.retry, store: store, describe: Self.describe)
        singleTry = StoreTransport(client: options.client, retry: RetryPolicy(maxAttempts: 1), store: store, describe: Self.describe)
        retry = options.retry
        self.now = now
    }

    // MARK: Endpoint and region

    static func resolve(options: StoreOptions, bucket: String, store: String) throws(StoreError) -> (endpoint: HTTPURL, region: String, pathStyle: Bool) {
        let environment = options.environment
        func value(_ name: String) -> String? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        let region = [options.region, value("AWS_REGION"), value("AWS_DEFAULT_REGION")].compactMap { $0 }.first { !$0.isEmpty } ?? "us-east-1"
        guard region.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
            throw StoreError(.invalidURL, store: store, message: "\"\(region)\" is not an AWS region name")
        }
        let configured = [options.endpoint, value("AWS_ENDPOINT_URL_S3"), value("AWS_ENDPOINT_URL")].compactMap { $0 }.first { !$0.isEmpty }
        var text = configured ?? "https://s3.\(region).amazonaws.com"
        while text.hasSuffix("/") { text.removeLast() }
        guard let endpoint = HTTPURL(string: text), endpoint.query.isEmpty else {
            throw StoreError(.invalidURL, store: store, message: "the S3 endpoint \(StoreURL.redacted(text)) is not an http(s)://host[:port][/path] URL")
        }
        var forced: Bool?
        if let force = value("AWS_S3_FORCE_PATH_STYLE") {
            switch force.lowercased() {
            case "true", "1", "yes": forced = true
            case "false", "0", "no": forced = false
            default: throw StoreError(.invalidURL, store: store, message: "AWS_S3_FORCE_PATH_STYLE is \"\(force)\"; expected true or false")
            }
        }
        // A bucket that is not a valid DNS label cannot be a host name (and a dotted one breaks the
        // TLS wildcard certificate), so it is always addressed by path.
        let hostSafe = !bucket.contains(".") && !bucket.contains("_") && !bucket.hasPrefix("-") && !bucket.hasSuffix("-")
        let pathStyle = !hostSafe || (forced ?? (configured != nil))
        return (endpoint, region, pathStyle)
    }

    /// The S3 error's code and message; a redirect says which region the bucket is in.
    static func describe(_ response: HTTPResponse) -> (code: String?, message: String) {
        var (code, message) = ErrorBody.xml(response)
        if let bucketRegion = response.headers["x-amz-bucket-region"], response.status == 301 || code == "AuthorizationHeaderMalformed" {
            message += (message.isEmpty ? "" : " ") + "(the bucket is in region \(bucketRegion); set the target's region or AWS_REGION)"
        }
        return (code, message)
    }

    // MARK: Requests

    /// The full object name of `key`, after checking it is a key every Tern store accepts.
    func objectName(_ key: String) throws(StoreError) -> String {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "a key must be a relative path without empty, . or .. segments")
        }
        guard !key.contains("\r"), !key.contains("\n"), !key.contains("\0") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 keys used by Tern cannot hold line breaks or NUL")
        }
        let name = url.objectName(key)
        guard name.utf8.count <= 1024 else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 keys are at most 1,024 bytes of UTF-8")
        }
        return name
    }

    /// How the body is accounted for in the signature.
    enum Payload {
        case none
        /// Hashed with SHA-256 and signed.
        case hashed([UInt8])
        /// Sent as `UNSIGNED-PAYLOAD`; its CRC32C header carries its integrity.
        case unsigned(BlobSource)
    }

    /// A signed request for the object `name` (nil: the bucket itself).
    func request(
        _ method: String, _ name: String?, query: [(name: String, value: String)] = [], headers: [(String, String)] = [],
        payload: Payload = .none, credentials: AWSCredentials, idempotent: Bool? = nil
    ) -> HTTPRequest {
        let host = usesPathStyle ? endpoint.host : "\(url.bucket).\(endpoint.host)"
        let base = endpoint.path == "/" ? "" : (PercentEncoding.decode(endpoint.path) ?? endpoint.path)
        let path: String
        if usesPathStyle {
            path = "\(base)/\(url.bucket)" + (name.map { "/\($0)" } ?? "")
        } else {
            path = "\(base)/\(name ?? "")"
        }
        let target = HTTPURL(secure: endpoint.secure, host: host, port: endpoint.port, path: "/")
        var fields = HTTPHeaders([("Host", target.hostHeader)])
        for (field, value) in headers { fields.add(field, value) }
        let body: BlobSource?
        let payloadHash: String
        switch payload {
        case .none:
            body = nil
            payloadHash = SigV4.emptyPayloadHash
        case .hashed(let bytes):
            body = .bytes(bytes)
            payloadHash = SHA256.hash(bytes).hex
        case .unsigned(let source):
            body = source
            payloadHash = SigV4.unsignedPayload
        }
        let signature = signer.sign(SigV4.Request(method: method, path: path, query: query, headers: fields),
                                    credentials: credentials, date: now(), payloadHash: payloadHash)
        let signed = HTTPURL(secure: target.secure, host: target.host, port: target.port, path: signature.path, query: signature.query)
        return HTTPRequest(method: method, url: signed, headers: signature.headers, body: body, idempotent: idempotent)
    }

    /// The payload form of a put's body: small buffers hashed, files and large buffers not.
    static func payload(_ source: BlobSource) -> Payload {
        if case .bytes(let bytes) = source, bytes.count <= hashedBodyLimit { return .hashed(bytes) }
        return .unsigned(source)
    }

    /// Sends what `build` makes with the current credentials, retrying per the policy; temporary
    /// credentials S3 calls expired are renewed once and the request sent again.
    func send(
        key: String?, accept: Set<Int> = [], using transport: StoreTransport? = nil,
        build: @escaping @Sendable (AWSCredentials) throws(StoreError) -> HTTPRequest
    ) async throws(StoreError) -> HTTPResponse {
        let transport = transport ?? self.transport
        let current = try await credentials.credentials()
        do {
            return try await transport.perform(key: key, accept: accept) { () throws(StoreError) -> HTTPRequest in try build(current) }
        } catch where current.expiration != nil && ["ExpiredToken", "InvalidToken", "TokenRefreshRequired"].contains(error.code ?? "") {
            await credentials.invalidate()
            let renewed = try await credentials.credentials()
            do {
                return try await transport.perform(key: key, accept: accept) { () throws(StoreError) -> HTTPRequest in try build(renewed) }
            } catch {
                throw Self.classified(error)
            }
        } catch {
            throw Self.classified(error)
        }
    }

    /// Like ``send(key:accept:using:build:)`` for operations whose 200 answer may be an error
    /// document (S3 decides only after the status line went out): such an answer is an error too, and
    /// a transient one is retried.
    func sendChecked(
        key: String?, accept: Set<Int> = [], tries: S3TryCounter? = nil,
        build: @escaping @Sendable (AWSCredentials) throws(StoreError) -> HTTPRequest
    ) async throws(StoreError) -> HTTPResponse {
        try await retry.run { () async throws(StoreError) -> HTTPResponse in
            tries?.increment()
            let response = try await send(key: key, accept: accept, using: singleTry, build: build)
            if response.isSuccess, let error = embeddedError(response, key: key) { throw error }
            return response
        }
    }

    /// The error inside a 200 answer's `<Error>` document, or nil.
    func embeddedError(_ response: HTTPResponse, key: String?) -> StoreError? {
        let text = response.bodyText
        guard let error = XMLText.elements("Error", in: text).first else { return nil }
        let code = XMLText.first("Code", in: error)
        let message = XMLText.first("Message", in: error) ?? "S3 answered 200 with an error"
        let transientCodes: Set<String> = ["InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout"]
        let kind: StoreError.Kind = transientCodes.contains(code ?? "") ? .transient : .rejected
        return Self.classified(StoreError(kind, store: url.description, key: key, status: response.status, code: code, message: message))
    }

    /// S3's checksum refusals as integrity errors.
    static func classified(_ error: StoreError) -> StoreError {
        let integrityCodes: Set<String> = ["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidChecksum"]
        guard let code = error.code, integrityCodes.contains(code) else { return error }
        var failure = error
        failure.kind = .integrity
        return failure
    }

    /// An object's facts from the headers of a HEAD (or a whole-object GET).
    func objectInfo(key: String, headers: HTTPHeaders) throws(StoreError) -> ObjectInfo {
        guard let lengthText = headers["Content-Length"], let size = Int64(lengthText), size >= 0 else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 described the object without a Content-Length")
        }
        return ObjectInfo(key: key, size: size, crc32c: Self.fullObjectCRC32C(headers), version: headers["ETag"].map(Self.unquoted))
    }

    /// The whole-object CRC32C in `x-amz-checksum-crc32c`; nil when there is none or it is a
    /// composite of part checksums (`value-N`, type `COMPOSITE`), which is not the bytes' CRC32C.
    static func fullObjectCRC32C(_ headers: HTTPHeaders) -> UInt32? {
        guard let text = headers["x-amz-checksum-crc32c"], !text.contains("-"),
              headers["x-amz-checksum-type"].map({ $0.uppercased() != "COMPOSITE" }) ?? true else { return nil }
        return try? CRC32C.value(base64Encoded: text)
    }

    static func unquoted(_ etag: String) -> String {
        var text = etag
        if text.hasPrefix("W/") { text.removeFirst(2) }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { text = String(text.dropFirst().dropLast()) }
        return text
    }

    // MARK: BlobStore

    public func head(_ key: String) async throws(StoreError) -> ObjectInfo? {
        let name = try objectName(key)
        let response = try await send(key: key, accept: [404]) { credentials in
            request("HEAD", name, headers: [("x-amz-checksum-mode", "ENABLED")], credentials: credentials)
        }
        if response.status == 404 { return nil }
        return try objectInfo(key: key, headers: response.headers)
    }

    @discardableResult
    public func put(_ key: String, from source: BlobSource, options: PutOptions) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        guard source.length <= Self.maxSinglePut else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 takes at most 5 GiB in one PUT; use a large (multipart) upload")
        }
        let contentType = try self.contentType(options, key: key)
        let crc: UInt32
        if let given = options.crc32c {
            crc = given
        } else {
            crc = try await source.crc32c(store: url.description, key: key)
        }
        let checksum = CRC32C.base64Encoded(crc)
        var headers = [("Content-Type", contentType), ("x-amz-checksum-crc32c", checksum),
                       // S3 needs only the checksum header; S3-compatible stores (moto) keep the value
                       // only when told the algorithm, as the SDKs do.
                       ("x-amz-sdk-checksum-algorithm", "CRC32C")]
        if options.createOnly { headers.append(("If-None-Match", "*")) }
        let payload = Self.payload(source)
        let fields = headers
        let tries = S3TryCounter()
        let response: HTTPResponse
        do {
            response = try await send(key: key) { credentials in
                tries.increment()
                var upload = request("PUT", name, headers: fields, payload: payload, credentials: credentials)
                upload.progress = options.progress
                return upload
            }
        } catch where error.status == 412 && options.createOnly {
            // A retry after a lost answer finds its own first try's object: that is success.
            if tries.value > 1, let existing = try await head(key), existing.size == source.length, existing.crc32c == crc {
                return existing
            }
            throw StoreError(.alreadyExists, store: url.description, key: key, status: 412, code: error.code, message: "an object already exists (create-only put)")
        }
        if let echoed = response.headers["x-amz-checksum-crc32c"], echoed != checksum {
            throw StoreError(.integrity, store: url.description, key: key,
                             message: "S3 reported CRC32C \(echoed) for the object, Tern sent \(checksum)")
        }
        return ObjectInfo(key: key, size: source.length, crc32c: crc, version: response.headers["ETag"].map(Self.unquoted))
    }

    /// The content type sent with an upload.
    func contentType(_ options: PutOptions, key: String) throws(StoreError) -> String {
        let type = options.contentType ?? "application/octet-stream"
        guard !type.contains("\r"), !type.contains("\n") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "the content type holds a line break")
        }
        return type
    }

    @discardableResult
    public func get(_ key: String, range: Range<Int64>?, into sink: any BlobSink) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        let (info, pinned) = try await PinnedRead.prepare(self, key: key, range: range, noun: "object", versionName: "ETag", storeName: "S3")
        guard let pinned else { return info }
        let wanted = pinned.range
        let etag = pinned.version
        let current = try await credentials.credentials()
        do {
            // If-Match pins the object: a resumed read never mixes bytes of two versions.
            _ = try await transport.download(key: key, range: wanted, into: sink) { from, to throws(StoreError) in
                request("GET", name, headers: [("Range", "bytes=\(from)-\((to ?? info.size) - 1)"), ("If-Match", "\"\(etag)\"")],
                        credentials: current)
            }
        } catch where error.status == 412 || error.kind == .notFound {
            throw StoreError(.preconditionFailed, store: url.description, key: key, status: error.status, code: error.code,
                             message: "the object (ETag \(etag)) was replaced or deleted while being read")
        } catch {
            throw Self.classified(error)
        }
        return info
    }

    public func list(prefix: String) async throws(StoreError) -> [ObjectInfo] {
        let fullPrefix = url.prefix.isEmpty ? prefix : "\(url.prefix)/\(prefix)"
        var results: [ObjectInfo] = []
        var token: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("max-keys", "\(listPageSize)"), ("encoding-type", "url")]
            if !fullPrefix.isEmpty { query.append(("prefix", fullPrefix)) }
            if let token { query.append(("continuation-token", token)) }
            let pageQuery = query
            let response = try await send(key: prefix) { credentials in
                request("GET", nil, query: pageQuery, credentials: credentials)
            }
            let text = response.bodyText
            for entry in XMLText.elements("Contents", in: text) {
                guard let encoded = XMLText.first("Key", in: entry), let name = PercentEncoding.decode(encoded, plusIsSpace: true),
                      let sizeText = XMLText.first("Size", in: entry), let size = Int64(sizeText) else {
                    throw StoreError(.rejected, store: url.description, key: prefix, message: "S3 listed an object without a readable Key or Size")
                }
                guard let key = url.key(ofObjectName: name), key.hasPrefix(prefix) else { continue }
                results.append(ObjectInfo(key: key, size: size, version: XMLText.first("ETag", in: entry).map(Self.unquoted)))
            }
            let truncated = XMLText.first("IsTruncated", in: text) == "true"
            token = truncated ? XMLText.first("NextContinuationToken", in: text) : nil
            if truncated && (token ?? "").isEmpty {
                throw StoreError(.rejected, store: url.description, key: prefix, message: "S3 answered a truncated list without a continuation token")
            }
        } while token != nil
        return results.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    public func delete(_ key: String) async throws(StoreError) {
        let name = try objectName(key)
        _ = try await send(key: key, accept: [404]) { credentials in
            request("DELETE", name, credentials: credentials)
        }
    }

    @discardableResult
    public func copy(from sourceKey: String, to key: String) async throws(StoreError) -> ObjectInfo {
        let sourceName = try objectName(sourceKey)
        let name = try objectName(key)
        guard let source = try await head(sourceKey) else {
            throw StoreError(.notFound, store: url.description, key: sourceKey, status: 404, message: "no such object to copy")
        }
        guard source.size <= Self.maxSinglePut else {
            throw StoreError(.unsupported, store: url.description, key: sourceKey,
                             message: "server-side copy of objects over 5 GiB (UploadPartCopy) is not implemented; download and upload instead")
        }
        let copySource = PercentEncoding.encode("\(url.bucket)/\(sourceName)", keepSlash: true)
        var headers = [("x-amz-copy-source", copySource), ("x-amz-checksum-algorithm", "CRC32C")]
        // Copy exactly the object just described, not whatever replaced it in between.
        if let etag = source.version { headers.append(("x-amz-copy-source-if-match", "\"\(etag)\"")) }
        let fields = headers
        do {
            _ = try await sendChecked(key: key) { credentials in
                request("PUT", name, headers: fields, credentials: credentials)
            }
        } catch where error.status == 412 {
            throw StoreError(.preconditionFailed, store: url.description, key: sourceKey, status: 412, code: error.code,
                             message: "the source object was replaced while being copied")
        }
        guard let info = try await head(key) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 reported the copy done but the object is not there")
        }
        if let expected = source.crc32c, let copied = info.crc32c, expected != copied {
            throw StoreError(.integrity, store: url.description, key: key,
                             message: "the copy's CRC32C \(crc32cHex(copied)) differs from the source's \(crc32cHex(expected))")
        }
        return info
    }

    // MARK: Presigned URLs

    /// A URL that lets whoever holds it `method` the object at `key` without credentials, until
    /// `expires` from now (at most 7 days; with temporary credentials, until they expire).
    public func presignedURL(for key: String, method: String = "GET", expires: Duration = .seconds(3600)) async throws(StoreError) -> String {
        let name = try objectName(key)
        let seconds = Int(expires.components.seconds)
        guard (1...604_800).contains(seconds) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "a presigned URL lasts from 1 second to 7 days")
        }
        let host = usesPathStyle ? endpoint.host : "\(url.bucket).\(endpoint.host)"
        let base = endpoint.path == "/" ? "" : (PercentEncoding.decode(endpoint.path) ?? endpoint.path)
        let path = usesPathStyle ? "\(base)/\(url.bucket)/\(name)" : "\(base)/\(name)"
        let target = HTTPURL(secure: endpoint.secure, host: host, port: endpoint.port, path: "/")
        let credentials = try await credentials.credentials()
        let signature = signer.presign(SigV4.Request(method: method, path: path, headers: HTTPHeaders([("Host", target.hostHeader)])),
                                       credentials: credentials, date: now(), expires: seconds)
        return "\(target.secure ? "https" : "http")://\(target.hostHeader)\(signature.path)?\(signature.query)"
    }
}

/// Counts the tries of a request (its build closure runs once per try).
final class S3TryCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
