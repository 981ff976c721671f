public import Foundation

/// An AWS access key pair, with the session token of temporary credentials.
///
/// Printing it (`description`, `debugDescription`, `dump`) shows the access key id and where the
/// credentials came from, never the secret or the session token.
public struct AWSCredentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working; nil for long-lived keys.
    public var expiration: Date?
    /// Where they were found, for messages: `environment`, `shared credentials file PATH (profile P)`,
    /// `instance metadata (role R)`.
    public var source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil, source: String = "given") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.source = source
    }

    public var description: String {
        "AWSCredentials(access key \(accessKeyID), secret redacted\(sessionToken == nil ? "" : ", session token redacted"), from \(source))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": accessKeyID, "secretAccessKey": "<redacted>",
                                "sessionToken": sessionToken == nil ? "none" : "<redacted>", "source": source])
    }
}

/// Finds AWS credentials the way the AWS CLI does, reading only ``StoreOptions/environment``:
///
/// 1. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), unless the target
///    names a credentials file or profile of its own (``StoreOptions/credentialsFile``,
///    ``StoreOptions/profile``), which then wins, as `--profile` does over the variables;
/// 2. the shared credentials file: ``StoreOptions/credentialsFile``, else
///    `AWS_SHARED_CREDENTIALS_FILE`, else `$HOME/.aws/credentials`; profile ``StoreOptions/profile``,
///    else `AWS_PROFILE`, else `default`;
/// 3. the EC2 instance metadata service (IMDSv2), unless `AWS_EC2_METADATA_DISABLED=true`; its
///    temporary credentials are cached and renewed five minutes before they expire.
///
/// A file or profile named explicitly that cannot be used is an error at once rather than a reason
/// to fall through to the instance's role. When nothing is found, the error lists every source tried
/// and why it failed. No message ever contains a secret.
public actor AWSCredentialsProvider {
    /// Credentials are renewed this long before they expire.
    static let refreshMargin: TimeInterval = 300

    private let fixed: AWSCredentials?
    private let metadata: InstanceMetadataCredentials?
    /// Why each source before the metadata service gave nothing, for the final error.
    private let tried: [String]
    private let store: String
    private let now: @Sendable () -> Date
    private var cached: AWSCredentials?
    private var fetching: Task<Result<AWSCredentials, StoreError>, Never>?

    /// Resolves the environment and the credentials file now; the metadata service, which needs the
    /// network, on first use.
    /// - Parameter now: the wall clock expiry is judged by (injected by tests).
    public init(options: StoreOptions, store: String, now: @escaping @Sendable () -> Date = { Date() }) throws(StoreError) {
        self.store = store
        self.now = now
        let environment = options.environment
        func value(_ name: String) -> String? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        func failure(_ message: String) -> StoreError {
            StoreError(.credentials, store: store, message: message)
        }
        var tried: [String] = []
        let explicitChoice = options.credentialsFile != nil || options.profile != nil

        // 1. The environment.
        let keyID = value("AWS_ACCESS_KEY_ID")
        let secret = value("AWS_SECRET_ACCESS_KEY")
        if explicitChoice {
            tried.append("environment: not used, the target names a credentials file or profile")
        } else if let keyID, let secret {
            fixed = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"), source: "environment")
            metadata = nil
            self.tried = []
            return
        } else if keyID != nil || secret != nil {
            throw failure("\(keyID == nil ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") is set but \(keyID == nil ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") is not")
        } else {
            tried.append("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
        }

        // 2. The shared credentials file.
        let explicitFile = options.credentialsFile ?? value("AWS_SHARED_CREDENTIALS_FILE")
        let explicitProfile = options.profile ?? value("AWS_PROFILE")
        let profile = explicitProfile ?? "default"
        var path = explicitFile
        if path == nil, let home = value("HOME") { path = "\(home)/.aws/credentials" }
        if let path {
            let origin = "shared credentials file \(path)"
            switch AWSSharedCredentialsFile.read(path) {
            case .missing(let why):
                if explicitFile != nil { throw failure("cannot read \(origin): \(why)") }
                tried.append("\(origin): \(why)")
            case .malformed(let why):
                throw failure("\(origin) is malformed: \(why)")
            case .profiles(let profiles):
                if let entries = profiles[profile] {
                    guard let keyID = entries["aws_access_key_id"], !keyID.isEmpty,
                          let secret = entries["aws_secret_access_key"], !secret.isEmpty else {
                        throw failure("profile \(profile) in \(origin) has no aws_access_key_id and aws_secret_access_key"
                            + " (role_arn, sso_* and credential_process profiles are not supported)")
                    }
                    let token = entries["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
                    fixed = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: token,
                                           source: "\(origin) (profile \(profile))")
                    metadata = nil
                    self.tried = []
                    return
                }
                if explicitProfile != nil || explicitFile != nil {
                    let known = profiles.keys.sorted().joined(separator: ", ")
                    throw failure("\(origin) has no profile \(profile)" + (known.isEmpty ? "" : " (it has: \(known))"))
                }
                tried.append("\(origin): no [\(profile)] profile")
            }
        } else {
            tried.append("shared credentials file: HOME is not set")
        }

        // 3. The instance metadata service.
        if value("AWS_EC2_METADATA_DISABLED")?.lowercased() == "true" {
            tried.append("instance metadata: disabled by AWS_EC2_METADATA_DISABLED")
            throw failure("no AWS credentials found; tried " + tried.joined(separator: "; "))
        }
        fixed = nil
        metadata = try InstanceMetadataCredentials(environment: environment, retry: options.retry, store: store)
        self.tried = tried
    }

    /// Where credentials come from, for messages (no secret).
    public nonisolated var sourceDescription: String {
        if let fixed { return fixed.source }
        return "instance metadata at \(metadata?.endpoint ?? "?")"
    }

    /// Current credentials: the fixed ones, or the metadata service's, fetched once and renewed
    /// shortly before they expire (still-valid ones are kept when a renewal fails).
    public func credentials() async throws(StoreError) -> AWSCredentials {
        if let fixed { return fixed }
        let current = now()
        if let cached, !Self.needsRefresh(cached, at: current) { return cached }
        let task: Task<Result<AWSCredentials, StoreError>, Never>
        if let fetching {
            task = fetching
        } else {
            let metadata = metadata!
            task = Task { await metadata.fetch() }
            fetching = task
        }
        let result = await task.value
        if fetching == task { fetching = nil }
        switch result {
        case .success(let fresh):
            cached = fresh
            return fresh
        case .failure(let error):
            if let cached, let expiration = cached.expiration, now() < expiration { return cached }
            throw StoreError(.credentials, store: store, message: "no AWS credentials found; tried "
                + (tried + ["instance metadata at \(metadata!.endpoint): \(error.message)"]).joined(separator: "; "))
        }
    }

    /// Forgets cached temporary credentials the store refused (expired early, revoked).
    public func invalidate() {
        cached = nil
    }

    static func needsRefresh(_ credentials: AWSCredentials, at time: Date) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return time >= expiration.addingTimeInterval(-refreshMargin)
    }
}
