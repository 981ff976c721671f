public import Foundation

/// OAuth 2.0 access tokens for GCS requests, fetched from the store's ``GoogleCredentials`` and
/// kept until shortly before they expire.
///
/// Concurrent callers share one fetch. The clock is injected so tests move time instead of waiting.
/// Tokens, assertions and keys never appear in an error or a description.
public actor GoogleAccessTokens {
    public let credentials: GoogleCredentials
    private let client: HTTPClient
    private let retry: RetryPolicy
    private let store: String
    private let scope: String
    private let now: @Sendable () -> Date
    private var cached: Token?
    private var fetching: Task<Result<Token, StoreError>, Never>?
    private var fetchCount = 0

    struct Token: Sendable {
        var header: String
        var refreshAt: Date
    }

    /// - Parameters:
    ///   - client: carries the token requests (a separate short-timeout client is used for the metadata server).
    ///   - store: the store's URL, for errors.
    ///   - now: the wall clock (JWT times and expiry).
    public init(
        credentials: GoogleCredentials, client: HTTPClient, retry: RetryPolicy, store: String,
        scope: String = GoogleJWT.readWriteScope, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.credentials = credentials
        self.client = client
        self.retry = retry
        self.store = store
        self.scope = scope
        self.now = now
    }

    /// The `Authorization` header value (`Bearer …`), or nil when the source needs none (an emulator).
    public func authorization() async throws(StoreError) -> String? {
        if case .anonymous = credentials { return nil }
        if let cached, now() < cached.refreshAt { return cached.header }
        if let fetching { return try await fetching.value.get().header }
        let task = Task { await self.fetch() }
        fetching = task
        let result = await task.value
        fetching = nil
        let token = try result.get()
        cached = token
        return token.header
    }

    /// Forgets `authorization` after the store refused it (HTTP 401), so the next call fetches anew.
    public func invalidate(_ authorization: String) {
        if cached?.header == authorization { cached = nil }
    }

    /// How many tokens were fetched so far (the cache's effect, for tests and diagnostics).
    public var fetches: Int { fetchCount }

    private func fetch() async -> Result<Token, StoreError> {
        fetchCount += 1
        let started = now()
        do throws(StoreError) {
            let (token, lifetime) = switch credentials {
            case .serviceAccount(let key, _): try await exchange(key)
            case .metadataServer(let host): try await metadataToken(host)
            case .anonymous: ("", Int64(0))
            }
            // Renew five minutes early, or half-way through a short-lived token.
            let margin = min(300, lifetime / 2)
            return .success(Token(header: "Bearer \(token)", refreshAt: started.addingTimeInterval(TimeInterval(lifetime - margin))))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Service account: the JWT bearer grant

    private func exchange(_ key: ServiceAccountKey) async throws(StoreError) -> (String, Int64) {
        guard let url = HTTPURL(string: key.tokenURI) else {
            throw StoreError(.credentials, store: store, message: "\(credentials): token_uri is not an http(s) URL")
        }
        let transport = StoreTransport(client: client, retry: retry, store: store, describe: Self.describeOAuthError)
        let (now, scope, store) = (self.now, self.scope, self.store)
        let response: HTTPResponse
        do {
            response = try await transport.perform(key: nil) { () throws(StoreError) -> HTTPRequest in
                // A fresh assertion per try: its iat is the time of this request.
                let issuedAt = Int64(now().timeIntervalSince1970)
                let assertion = try GoogleJWT.assertion(key: key, scope: scope, issuedAt: issuedAt, store: store)
                let form = PercentEncoding.query([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)])
                return HTTPRequest(
                    method: "POST", url: url, headers: HTTPHeaders([("Content-Type", "application/x-www-form-urlencoded")]),
                    body: .bytes(Array(form.utf8)), idempotent: true)
            }
        } catch {
            throw refused(error, by: "the token endpoint \(url)", request: "the token request of \(credentials)")
        }
        return try parseToken(response, from: "the token endpoint \(url)")
    }

    // MARK: The metadata server

    private func metadataToken(_ host: String) async throws(StoreError) -> (String, Int64) {
        guard let url = HTTPURL(string: "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token") else {
            throw StoreError(.credentials, store: store, message: "GCE_METADATA_HOST \(host) is not a host[:port]")
        }
        // Off Google Cloud the name does not resolve or nothing answers: fail fast, retry little.
        var configuration = HTTPClient.Configuration()
        configuration.connectTimeout = .seconds(2)
        configuration.ioTimeout = .seconds(15)
        let metadataClient = HTTPClient(configuration: configuration)
        let policy = RetryPolicy(
            maxAttempts: min(3, retry.maxAttempts), baseDelay: retry.baseDelay, maxDelay: retry.maxDelay,
            sleep: retry.sleep, random: retry.random)
        let transport = StoreTransport(client: metadataClient, retry: policy, store: store, describe: Self.describeOAuthError)
        let response: HTTPResponse
        do {
            response = try await transport.perform(key: nil) { () throws(StoreError) -> HTTPRequest in
                HTTPRequest(method: "GET", url: url, headers: HTTPHeaders([("Metadata-Flavor", "Google")]))
            }
        } catch {
            var failure = refused(error, by: "the metadata server at \(host)", request: "the token request (does the VM have a service account?)")
            if error.status == nil {
                failure.kind = .credentials
                failure.message = "no GCS credentials: \(GoogleCredentials.fallbackChain), and \(error.message). "
                    + "Set credentials_file on the target or GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or STORAGE_EMULATOR_HOST for an emulator"
            }
            throw failure
        }
        guard response.headers["Metadata-Flavor"] == "Google" else {
            throw StoreError(.credentials, store: store, message: "\(host) answered without Metadata-Flavor: Google; it is not a Google metadata server")
        }
        return try parseToken(response, from: "the metadata server at \(host)")
    }

    // MARK: Responses

    private func parseToken(_ response: HTTPResponse, from source: String) throws(StoreError) -> (String, Int64) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let token = object["access_token"] as? String, !token.isEmpty else {
            throw StoreError(.credentials, store: store, status: response.status, message: "\(source) answered without an access_token")
        }
        let lifetime = (object["expires_in"] as? NSNumber)?.int64Value ?? 3600
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw StoreError(.credentials, store: store, message: "\(source) answered with an access token Tern cannot send in a header")
        }
        return (token, max(lifetime, 0))
    }

    /// An endpoint's refusal as an error about credentials: 4xx means the key or the VM's account
    /// was refused; other failures keep their kind (transient network trouble stays transient).
    private func refused(_ error: StoreError, by source: String, request: String) -> StoreError {
        var failure = error
        if let status = error.status, (400..<500).contains(status) {
            failure.kind = .unauthorized
            failure.message = "\(source) refused \(request): \(error.message)"
        } else {
            failure.message = "cannot get an access token from \(source): \(error.message)"
        }
        return failure
    }

    /// `{"error": "invalid_grant", "error_description": "…"}`; the raw body is never quoted, since a
    /// misbehaving endpoint could echo the assertion.
    @Sendable static func describeOAuthError(_ response: HTTPResponse) -> (code: String?, message: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            return (nil, "HTTP \(response.status) without a JSON error")
        }
        if let code = object["error"] as? String {
            return (code, object["error_description"] as? String ?? "")
        }
        if object["error"] is [String: Any] {
            return ErrorBody.googleJSON(response)
        }
        return (nil, "HTTP \(response.status)")
    }
}
