public import Foundation
import TernCrypto

/// An Azure Blob Storage container (or a prefix of one): `az://account/container/prefix`, over the
/// Blob service REST API, version 2021-08-06, as block blobs.
///
/// Azure keeps no CRC32C of a blob. Instead every request that carries bytes (Put Blob, Put Block)
/// sends their CRC64 in `x-ms-content-crc64` and the service refuses a body that does not match it
/// (`Crc64Mismatch`, reported as ``StoreError/Kind/integrity``); that per-request check is Azure's
/// L1. ``ObjectInfo/crc32c`` is therefore always nil here. Tern also records two metadata entries:
/// `terncrc32c`, its own CRC32C of the bytes (for people reading the blob; never reported as the
/// store's checksum), and `ternwrite`, a random id of the put (the upload id of a large put), by
/// which a create-only put whose answer was lost recognises its own blob when the retry is refused.
/// The blob's ETag (without quotes) is its ``ObjectInfo/version``, and reads pin it with `If-Match`.
///
/// The endpoint is ``StoreOptions/endpoint``, else the `BlobEndpoint` of the connection string
/// or key file, else `https://ACCOUNT.blob.core.windows.net`. An endpoint with a path (the
/// emulator's `http://127.0.0.1:10000/devstoreaccount1`) is used path-style: requests go to
/// `ENDPOINT/CONTAINER/BLOB`. Credentials: see ``AzureCredentials``.
public struct AzureStore: BlobStore {
    /// The REST API version every request names (`x-ms-version`) and SAS tokens are signed for.
    public static let apiVersion = "2021-08-06"
    /// Azure's limits for a block blob: 50,000 blocks of at most 4,000 MiB.
    static let maxBlocks: Int64 = 50_000
    static let maxBlockSize: Int64 = 4000 << 20
    /// The metadata entry holding Tern's CRC32C of the bytes (lowercase hex).
    static let crcMetadata = "x-ms-meta-terncrc32c"
    /// The metadata entry naming the put that wrote the blob.
    static let writeMetadata = "x-ms-meta-ternwrite"

    public let url: StoreURL
    /// The blob service endpoint: scheme, host, port and, path-style, the account.
    public let endpoint: HTTPURL
    public let credentials: AzureCredentials
    let transport: StoreTransport
    let retry: RetryPolicy
    let now: @Sendable () -> Date
    /// Makes each request's `x-ms-client-request-id`, which the service logs (fixed in tests).
    var makeRequestID: @Sendable () -> String = { UUID().uuidString.lowercased() }
    /// Blobs asked for per List Blobs page (the service returns at most 5,000).
    public var listPageSize = 5000
    /// How many times an asynchronous copy's status is asked before giving up.
    public var copyStatusPolls = 600
    /// Sources up to this size are copied synchronously (Copy Blob From URL takes at most 256 MiB).
    public var syncCopyLimit: Int64 = 256 << 20

    public init(url: StoreURL, options: StoreOptions) throws(StoreError) {
        try self.init(url: url, options: options, now: { Date() })
    }

    /// - Parameter now: the clock `x-ms-date` and generated SAS tokens use (injected by tests).
    public init(url: StoreURL, options: StoreOptions, now: @escaping @Sendable () -> Date) throws(StoreError) {
        guard url.scheme == .az else {
            throw StoreError(.invalidURL, store: url.description, message: "not an az:// URL")
        }
        self.url = url
        credentials = try AzureCredentials.resolve(account: url.bucket, options: options, store: url.description)
        endpoint = try Self.endpoint(account: url.bucket, options: options, credentials: credentials, store: url.description)
        transport = StoreTransport(client: options.client, retry: options.retry, store: url.description, describe: ErrorBody.xml)
        retry = options.retry
        self.now = now
    }

    /// ``StoreOptions/endpoint``, else the credentials' blob endpoint, else the public endpoint.
    static func endpoint(account: String, options: StoreOptions, credentials: AzureCredentials, store: String) throws(StoreError) -> HTTPURL {
        let configured = [options.endpoint, credentials.blobEndpoint].compactMap { $0 }.first { !$0.isEmpty }
        var text = configured ?? "https://\(account).blob.core.windows.net"
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = HTTPURL(string: text), parsed.query.isEmpty else {
            throw StoreError(.invalidURL, store: store, message: "the Azure blob endpoint \(StoreURL.redacted(text)) is not an http(s)://host[:port][/path] URL")
        }
        return parsed
    }

    // MARK: Requests

    var basePath: String { endpoint.path == "/" ? "" : endpoint.path }
    var containerPath: String { "\(basePath)/\(url.container)" }
    func blobPath(_ name: String) -> String { "\(containerPath)/\(PercentEncoding.encode(name, keepSlash: true))" }

    /// The blob's URL without any credential (the source of a copy).
    func blobURL(_ name: String) -> HTTPURL {
        HTTPURL(secure: endpoint.secure, host: endpoint.host, port: endpoint.port, path: blobPath(name))
    }

    /// A request carrying `x-ms-version`, `x-ms-date` (now) and a fresh `x-ms-client-request-id`,
    /// authorized: signed with the account key, or with the caller's SAS token in its query.
    func request(
        _ method: String, path: String, query: [(String, String)] = [], headers: [(String, String)] = [],
        body: BlobSource? = nil, idempotent: Bool? = nil
    ) -> HTTPRequest {
        var fields = HTTPHeaders(headers)
        fields.add("x-ms-version", Self.apiVersion)
        fields.add("x-ms-date", AzureDate.rfc1123(now()))
        fields.add("x-ms-client-request-id", makeRequestID())
        var queryText = PercentEncoding.query(query)
        if case .sas(let token) = credentials.method {
            queryText = queryText.isEmpty ? token.query : "\(queryText)&\(token.query)"
        }
        let target = HTTPURL(secure: endpoint.secure, host: endpoint.host, port: endpoint.port, path: path, query: queryText)
        var request = HTTPRequest(method: method, url: target, headers: fields, body: body, idempotent: idempotent)
        if case .sharedKey(let signer) = credentials.method { signer.sign(&request) }
        return request
    }

    /// The full blob name of `key`, after checking it is a key every Tern store accepts.
    func blobName(_ key: String) throws(StoreError) -> String {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "a key must be a relative path without empty, . or .. segments")
        }
        guard !key.contains("\r"), !key.contains("\n"), !key.hasSuffix(".") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "Azure blob names cannot hold line breaks or end with '.'")
        }
        let name = url.objectName(key)
        guard name.count <= 1024 else {
            throw StoreError(.rejected, store: url.description, key: key, message: "Azure blob names are at most 1,024 characters")
        }
        return name
    }

    /// The content type sent with an upload.
    func contentType(_ options: PutOptions, key: String) throws(StoreError) -> String? {
        guard let type = options.contentType else { return nil }
        guard !type.contains("\r"), !type.contains("\n") else {
            throw StoreError(.rejected, store: url.description, key: key, message: "the content type holds a line break")
        }
        return type
    }

    /// The service's refusal of a body whose checksum does not match, as an integrity error.
    func integrityError(_ error: StoreError) -> StoreError? {
        guard error.status == 400, let code = error.code, ["Crc64Mismatch", "Md5Mismatch"].contains(code) else { return nil }
        var failure = error
        failure.kind = .integrity
        return failure
    }

    func alreadyExists(_ error: StoreError, key: String) -> StoreError {
        StoreError(.alreadyExists, store: url.description, key: key, status: error.status, code: error.code,
                   message: "a blob already exists (create-only put)")
    }

    /// Facts from a Get Blob Properties (or Put Blob) answer.
    func objectInfo(_ response: HTTPResponse, key: String, size: Int64? = nil) throws(StoreError) -> ObjectInfo {
        guard let length = size ?? response.headers["Content-Length"].flatMap({ Int64($0) }) else {
            throw StoreError(.rejected, store: url.description, key: key, status: response.status, message: "Azure answered without the blob's length")
        }
        return ObjectInfo(key: key, size: length, crc32c: nil, version: response.headers["ETag"].map(AzureXML.unquoted))
    }

    // MARK: BlobStore

    public func head(_ key: String) async throws(StoreError) -> ObjectInfo? {
        try await properties(key)?.info
    }

    /// The blob's facts and its Get Blob Properties answer (for metadata and copy status).
    func properties(_ key: String) async throws(StoreError) -> (info: ObjectInfo, response: HTTPResponse)? {
        let name = try blobName(key)
        let response = try await transport.perform(key: key, accept: [404]) { headRequest(name: name) }
        if response.status == 404 { return nil }
        return (try objectInfo(response, key: key), response)
    }

    @discardableResult
    public func put(_ key: String, from source: BlobSource, options: PutOptions) async throws(StoreError) -> ObjectInfo {
        let name = try blobName(key)
        let contentType = try self.contentType(options, key: key)
        let sums = try await AzureChecksums.of(source, store: url.description, key: key)
        if let given = options.crc32c, given != sums.crc32c {
            throw StoreError(.integrity, store: url.description, key: key,
                             message: "the source's CRC32C is \(crc32cHex(sums.crc32c)), expected \(crc32cHex(given)): it changed, nothing was sent")
        }
        let writeID = Self.newUploadID()
        let response: HTTPResponse
        do {
            response = try await transport.perform(key: key) {
                putBlobRequest(name: name, body: source, createOnly: options.createOnly, contentType: contentType,
                               checksums: sums, writeID: writeID, progress: options.progress)
            }
        } catch where options.createOnly && (error.status == 409 || error.status == 412) {
            // A retry after a lost answer (by the transport or the HTTP client) finds its own first
            // try's blob: that is success.
            if let own = try await ownBlob(key, writeID: writeID, size: source.length) { return own }
            throw alreadyExists(error, key: key)
        } catch {
            throw integrityError(error) ?? error
        }
        return try objectInfo(response, key: key, size: source.length)
    }

    /// The blob at `key` when the put `writeID` wrote it and it holds `size` bytes.
    func ownBlob(_ key: String, writeID: String, size: Int64) async throws(StoreError) -> ObjectInfo? {
        guard let (info, response) = try await properties(key), info.size == size,
              response.headers[Self.writeMetadata] == writeID else { return nil }
        return info
    }

    @discardableResult
    public func get(_ key: String, range: Range<Int64>?, into sink: any BlobSink) async throws(StoreError) -> ObjectInfo {
        let name = try blobName(key)
        let (info, pinned) = try await PinnedRead.prepare(self, key: key, range: range, noun: "blob", versionName: "ETag", storeName: "Azure")
        guard let pinned else { return info }
        let wanted = pinned.range
        let etag = pinned.version
        do {
            // The ETag pins the bytes: a resumed read never mixes two versions of the blob.
            _ = try await transport.download(key: key, range: wanted, into: sink) { from, to throws(StoreError) in
                getRequest(name: name, range: from..<(to ?? info.size), etag: "\"\(etag)\"")
            }
        } catch where error.status == 412 || error.kind == .notFound {
            throw StoreError(.preconditionFailed, store: url.description, key: key, status: error.status, code: error.code,
                             message: "ETag \(etag) is gone: the blob was replaced or deleted while being read")
        }
        return info
    }

    public func list(prefix: String) async throws(StoreError) -> [ObjectInfo] {
        let fullPrefix = url.prefix.isEmpty ? prefix : "\(url.prefix)/\(prefix)"
        var results: [ObjectInfo] = []
        var marker: String?
        repeat {
            let pageMarker = marker
            let response = try await transport.perform(key: prefix) {
                listRequest(prefix: fullPrefix, marker: pageMarker, maxResults: listPageSize)
            }
            guard let page = AzureXML.listPage(response.bodyText) else {
                throw StoreError(.rejected, store: url.description, key: prefix, status: response.status, message: "Azure answered List Blobs with something that is not a blob list")
            }
            for blob in page.blobs {
                if let key = url.key(ofObjectName: blob.name), key.hasPrefix(prefix) {
                    results.append(ObjectInfo(key: key, size: blob.size, crc32c: nil, version: blob.etag))
                }
            }
            marker = page.nextMarker
        } while marker != nil
        return results.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    public func delete(_ key: String) async throws(StoreError) {
        let name = try blobName(key)
        _ = try await transport.perform(key: key, accept: [404]) { deleteRequest(name: name) }
    }

    /// Creates the container; one that exists already is fine. For setting up a target (and tests):
    /// Tern never creates containers on its own.
    public func createContainer() async throws(StoreError) {
        _ = try await transport.perform(key: nil, accept: [409]) { createContainerRequest() }
    }

    /// A URL that grants `permissions` (letters from `racwd`) on one blob until `expiry`, signed with
    /// the account key: for handing a single checkpoint file to a process without credentials.
    /// - Throws: ``StoreError/Kind/unsupported`` when the store holds a SAS token rather than a key.
    public func signedURL(for key: String, permissions: String = "r", expiry: Date, start: Date? = nil) throws(StoreError) -> String {
        let name = try blobName(key)
        guard case .sharedKey(let signer) = credentials.method else {
            throw StoreError(.unsupported, store: url.description, key: key, message: "signing a URL needs the account key; the store was opened with a SAS token")
        }
        let token = try AzureSAS.blobToken(signer: signer, container: url.container, blob: name, permissions: permissions,
                                           expiry: expiry, start: start, protocols: endpoint.secure ? "https" : nil)
        return "\(blobURL(name).description)?\(token)"
    }
}
