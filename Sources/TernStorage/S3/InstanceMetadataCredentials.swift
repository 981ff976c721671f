import Foundation

/// Temporary credentials of the EC2 instance's IAM role from the instance metadata service, IMDSv2
/// only: a session token is asked for with `PUT /latest/api/token`, then the role name and its
/// credentials are read with that token. Timeouts are short (1 s to connect, 2 s per read) and a
/// failure is tried once more, so a machine that is not on EC2 learns it within seconds.
struct InstanceMetadataCredentials: Sendable {
    /// The service's base URL: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`.
    let endpoint: String
    private let base: HTTPURL
    private let client: HTTPClient
    private let transport: StoreTransport
    /// Lifetime asked for the IMDSv2 session token (the service's maximum is 6 hours).
    static let tokenLifetime = 21_600
    static let defaultEndpoint = "http://169.254.169.254"

    init(environment: [String: String], retry: RetryPolicy, store: String) throws(StoreError) {
        var text = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultEndpoint
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = HTTPURL(string: text), parsed.query.isEmpty else {
            throw StoreError(.invalidURL, store: store, message: "AWS_EC2_METADATA_SERVICE_ENDPOINT \(StoreURL.redacted(text)) is not an http(s)://host[:port] URL")
        }
        endpoint = text
        base = parsed
        var configuration = HTTPClient.Configuration()
        configuration.connectTimeout = .seconds(1)
        configuration.ioTimeout = .seconds(2)
        configuration.maxBufferedBody = 64 << 10
        client = HTTPClient(configuration: configuration)
        let quick = RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(100), maxDelay: .milliseconds(500), sleep: retry.sleep, random: retry.random)
        transport = StoreTransport(client: client, retry: quick, store: "instance metadata", describe: { response in
            (nil, String(response.bodyText.prefix(200)))
        })
    }

    private func url(_ path: String) -> HTTPURL {
        HTTPURL(secure: base.secure, host: base.host, port: base.port, path: (base.path == "/" ? "" : base.path) + path)
    }

    /// Fetches the role's current credentials; the error's message says which step failed.
    func fetch() async -> Result<AWSCredentials, StoreError> {
        do throws(StoreError) {
            return .success(try await fetchCredentials())
        } catch {
            return .failure(error)
        }
    }

    private func fetchCredentials() async throws(StoreError) -> AWSCredentials {
        let tokenURL = url("/latest/api/token")
        let tokenResponse: HTTPResponse
        do {
            tokenResponse = try await transport.perform(key: nil) {
                HTTPRequest(method: "PUT", url: tokenURL, headers: HTTPHeaders([("X-aws-ec2-metadata-token-ttl-seconds", "\(Self.tokenLifetime)")]))
            }
        } catch {
            throw step("asking for a session token", error)
        }
        let token = tokenResponse.bodyText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains("\n"), !token.contains("\r") else {
            throw StoreError(.credentials, store: "instance metadata", message: "the service answered the token request without a token")
        }
        let headers = HTTPHeaders([("X-aws-ec2-metadata-token", token)])

        let rolesURL = url("/latest/meta-data/iam/security-credentials/")
        let roles: HTTPResponse
        do {
            roles = try await transport.perform(key: nil) { HTTPRequest(method: "GET", url: rolesURL, headers: headers) }
        } catch where error.status == 404 {
            throw StoreError(.credentials, store: "instance metadata", status: 404, message: "this instance has no IAM role")
        } catch {
            throw step("listing the instance's IAM role", error)
        }
        guard let role = roles.bodyText.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
              !role.isEmpty, !role.contains("/") else {
            throw StoreError(.credentials, store: "instance metadata", message: "the service named no IAM role")
        }

        let credentialsURL = url("/latest/meta-data/iam/security-credentials/\(PercentEncoding.encode(role))")
        let answer: HTTPResponse
        do {
            answer = try await transport.perform(key: nil) { HTTPRequest(method: "GET", url: credentialsURL, headers: headers) }
        } catch {
            throw step("reading the credentials of role \(role)", error)
        }
        return try Self.decode(answer.body, role: role)
    }

    private func step(_ what: String, _ error: StoreError) -> StoreError {
        let detail = error.status.map { "HTTP \($0)" } ?? error.message
        return StoreError(.credentials, store: "instance metadata", status: error.status, message: "\(what) failed: \(detail)")
    }

    struct Document: Decodable {
        var Code: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    /// Parses the role credentials document; messages never quote it (it holds the secret).
    static func decode(_ body: [UInt8], role: String) throws(StoreError) -> AWSCredentials {
        func failure(_ why: String) -> StoreError {
            StoreError(.credentials, store: "instance metadata", message: "the credentials of role \(role) \(why)")
        }
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(body)) else {
            throw failure("are not the expected JSON document")
        }
        if let code = document.Code, code != "Success" { throw failure("are not available (Code \(code))") }
        guard let keyID = document.AccessKeyId, !keyID.isEmpty, let secret = document.SecretAccessKey, !secret.isEmpty else {
            throw failure("lack AccessKeyId or SecretAccessKey")
        }
        var expiration: Date?
        if let text = document.Expiration {
            guard let parsed = ISO8601DateFormatter().date(from: text) else { throw failure("have an unreadable Expiration") }
            expiration = parsed
        }
        return AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: document.Token.flatMap { $0.isEmpty ? nil : $0 },
                              expiration: expiration, source: "instance metadata (role \(role))")
    }
}
