public import Foundation
import Glibc
import TernCrypto

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), in the `Authorization` header or in the query
/// string (presigned URLs).
///
/// Written from the published specification and checked against every case of AWS's SigV4 test
/// suite (Tests/TernStorageTests/Fixtures/aws-sigv4). The derived signing key is cached per access
/// key, date, region and service, so a request costs two HMACs and one SHA-256 after the first of
/// the day.
///
/// Paths and query parameters are given decoded; the signer encodes them (RFC 3986, every byte
/// but `A–Z a–z 0–9 - . _ ~`), and ``Signature/path`` and ``Signature/query`` are the encoded forms
/// to put in the URL, so what is sent is always what was signed.
public struct SigV4: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash S3 accepts when the body is not hashed (its integrity is then carried by
    /// `x-amz-checksum-crc32c`).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of no bytes.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// Headers never signed: the signature itself, and headers proxies may add or change.
    public static let unsignedHeaders: Set<String> = ["authorization", "user-agent", "expect", "x-amzn-trace-id"]

    public let region: String
    public let service: String
    /// Remove `.`/`..` segments and repeated slashes before signing (every service but S3, whose keys
    /// may legitimately contain them).
    public let normalizesPath: Bool
    private let keys = SigningKeyCache()

    public init(region: String, service: String, normalizesPath: Bool = false) {
        self.region = region
        self.service = service
        self.normalizesPath = normalizesPath
    }

    /// A request as the signer sees it.
    public struct Request: Sendable {
        public var method: String
        /// The path, not percent-encoded (`/bucket/a key`).
        public var path: String
        /// Query parameters, not percent-encoded, in any order; an empty value is `name=`.
        public var query: [(name: String, value: String)]
        /// Every header to send, `Host` included; repeated names are signed as one comma-joined value.
        public var headers: HTTPHeaders

        public init(method: String, path: String, query: [(name: String, value: String)] = [], headers: HTTPHeaders) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
        }
    }

    /// The outcome of signing, with the intermediate strings the test suite checks.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        /// 64 lowercase hex digits.
        public var signature: String
        /// The headers to send: the request's, plus `X-Amz-Date`, `X-Amz-Security-Token`,
        /// `X-Amz-Content-SHA256` and `Authorization` when signing in the header.
        public var headers: HTTPHeaders
        /// The percent-encoded path for the URL.
        public var path: String
        /// The percent-encoded query for the URL (with the `X-Amz-*` parameters when presigned).
        public var query: String
        /// The `Authorization` header's value; nil for a presigned request.
        public var authorization: String?
    }

    // MARK: Signing

    /// Signs in the `Authorization` header.
    /// - Parameters:
    ///   - payloadHash: hex SHA-256 of the body, or ``unsignedPayload``.
    ///   - sendsPayloadHash: add `X-Amz-Content-SHA256` (S3 requires it; other services do not).
    public func sign(
        _ request: Request, credentials: AWSCredentials, date: Date, payloadHash: String, sendsPayloadHash: Bool = true
    ) -> Signature {
        let (day, timestamp) = Self.timestamp(date)
        var headers = request.headers
        headers.set("X-Amz-Date", timestamp)
        if let token = credentials.sessionToken { headers.set("X-Amz-Security-Token", token) }
        if sendsPayloadHash { headers.set("X-Amz-Content-SHA256", payloadHash) }
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalPath = Self.canonicalPath(request.path, normalize: normalizesPath)
        let canonicalQuery = Self.canonicalQuery(request.query)
        let canonicalRequest = [request.method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = Self.stringToSign(timestamp: timestamp, scope: scope, canonicalRequest: canonicalRequest)
        let signature = signature(of: stringToSign, day: day, credentials: credentials)
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        headers.set("Authorization", authorization)
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         headers: headers, path: Self.encodedPath(request.path), query: canonicalQuery, authorization: authorization)
    }

    /// Signs in the query string: a URL anyone holding it can use until `expires` seconds after `date`.
    /// - Parameter payloadHash: ``unsignedPayload`` for S3 presigned URLs.
    public func presign(
        _ request: Request, credentials: AWSCredentials, date: Date, expires: Int, payloadHash: String = unsignedPayload
    ) -> Signature {
        let (day, timestamp) = Self.timestamp(date)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(request.headers)
        var query = request.query
        query.append(("X-Amz-Algorithm", Self.algorithm))
        query.append(("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"))
        query.append(("X-Amz-Date", timestamp))
        query.append(("X-Amz-Expires", String(expires)))
        if let token = credentials.sessionToken { query.append(("X-Amz-Security-Token", token)) }
        query.append(("X-Amz-SignedHeaders", signedHeaders))
        let canonicalQuery = Self.canonicalQuery(query)
        let canonicalPath = Self.canonicalPath(request.path, normalize: normalizesPath)
        let canonicalRequest = [request.method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let stringToSign = Self.stringToSign(timestamp: timestamp, scope: scope, canonicalRequest: canonicalRequest)
        let signature = signature(of: stringToSign, day: day, credentials: credentials)
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         headers: request.headers, path: Self.encodedPath(request.path),
                         query: canonicalQuery + "&X-Amz-Signature=\(signature)", authorization: nil)
    }

    private func signature(of stringToSign: String, day: String, credentials: AWSCredentials) -> String {
        let key = keys.key(credentials: credentials, day: day, region: region, service: service)
        return HMACSHA256.authenticate(message: stringToSign, key: key).hex
    }

    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request")`.
    static func signingKey(secret: String, day: String, region: String, service: String) -> [UInt8] {
        let dateKey = HMACSHA256.authenticate(message: day, key: Array("AWS4\(secret)".utf8))
        let regionKey = HMACSHA256.authenticate(message: region, key: dateKey)
        let serviceKey = HMACSHA256.authenticate(message: service, key: regionKey)
        return HMACSHA256.authenticate(message: "aws4_request", key: serviceKey).bytes
    }

    // MARK: Canonical forms

    static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
        "\(algorithm)\n\(timestamp)\n\(scope)\n\(SHA256.hash(canonicalRequest).hex)"
    }

    /// The path with every segment encoded once (S3 rule and the test suite's; `/` kept), after
    /// removing dot segments and empty segments when `normalize` is set.
    static func canonicalPath(_ path: String, normalize: Bool) -> String {
        let absolute = path.hasPrefix("/") ? path : "/" + path
        guard normalize else { return encodedPath(absolute) }
        var kept: [Substring] = []
        let segments = absolute.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for segment in segments {
            switch segment {
            case "", ".": continue
            case "..": _ = kept.popLast()
            default: kept.append(segment)
            }
        }
        var result = "/" + kept.joined(separator: "/")
        // A path naming a directory keeps saying so: "/a/b/" and "/a/b/.." stay directories.
        if !kept.isEmpty, let last = segments.last, last.isEmpty || last == "." || last == ".." { result += "/" }
        return encodedPath(result)
    }

    static func encodedPath(_ path: String) -> String {
        PercentEncoding.encode(path.hasPrefix("/") ? path : "/" + path, keepSlash: true)
    }

    /// Names and values encoded, sorted by name then value, `name=value` joined with `&`.
    static func canonicalQuery(_ items: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = items.map { (PercentEncoding.encode($0.name), PercentEncoding.encode($0.value)) }
        let sorted = encoded.sorted { (left: (name: String, value: String), right: (name: String, value: String)) -> Bool in
            left.name == right.name ? left.value < right.value : left.name < right.name
        }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Lowercased names in order, values trimmed with inner runs of spaces made one, repeated names
    /// joined with commas in the order sent; returns the block (each line ending in `\n`) and the
    /// signed-headers list.
    static func canonicalHeaders(_ headers: HTTPHeaders) -> (block: String, signed: String) {
        var values: [String: [String]] = [:]
        for field in headers {
            let name = field.name.lowercased()
            guard !unsignedHeaders.contains(name) else { continue }
            values[name, default: []].append(trimmed(field.value))
        }
        let names = values.keys.sorted()
        let block = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    private static func trimmed(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` in UTC.
    static func timestamp(_ date: Date) -> (day: String, timestamp: String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let day = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))"
        return (day, "\(day)T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z")
    }
}

/// The signing key of the last access key, day, region and service seen (one entry per scope; a
/// store signs for one region and service, and the day changes once a day).
private final class SigningKeyCache: @unchecked Sendable {
    private struct Entry {
        var accessKeyID: String
        /// Compared too, so rotated credentials with the same key id get a fresh key.
        var secret: String
        var day: String
        var key: [UInt8]
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    func key(credentials: AWSCredentials, day: String, region: String, service: String) -> [UInt8] {
        let scope = "\(region)/\(service)"
        if let entry = lock.withLock({ entries[scope] }), entry.day == day,
           entry.accessKeyID == credentials.accessKeyID, entry.secret == credentials.secretAccessKey {
            return entry.key
        }
        let key = SigV4.signingKey(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        lock.withLock {
            entries[scope] = Entry(accessKeyID: credentials.accessKeyID, secret: credentials.secretAccessKey, day: day, key: key)
        }
        return key
    }
}
