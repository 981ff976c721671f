public import Foundation

/// What opening a store needs besides its URL: where the endpoint is, where credentials come from,
/// and the shared HTTP client. Credentials themselves are never part of this value's description.
public struct StoreOptions: Sendable {
    /// Overrides the store's endpoint (`--endpoint`): a MinIO, R2 or moto URL for S3, an emulator for
    /// GCS, a private endpoint for Azure. Otherwise the standard variables (`AWS_ENDPOINT_URL`,
    /// `STORAGE_EMULATOR_HOST`) and then the cloud's public endpoint are used.
    public var endpoint: String?
    /// The environment credentials and endpoints are read from; the process's by default, a
    /// dictionary in tests.
    public var environment: [String: String]
    /// A credentials file named by the target (`credentials_file`): an AWS shared credentials file,
    /// a GCP service-account key, an Azure key file.
    public var credentialsFile: String?
    /// The AWS profile (else `AWS_PROFILE`, else `default`).
    public var profile: String?
    /// The cloud region when the URL cannot say (S3), else from the environment.
    public var region: String?
    public var client: HTTPClient
    public var retry: RetryPolicy

    public init(
        endpoint: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        credentialsFile: String? = nil,
        profile: String? = nil,
        region: String? = nil,
        client: HTTPClient? = nil,
        retry: RetryPolicy = .standard
    ) {
        self.endpoint = endpoint
        self.environment = environment
        self.credentialsFile = credentialsFile
        self.profile = profile
        self.region = region
        self.client = client ?? HTTPClient(configuration: .fromEnvironment(environment))
        self.retry = retry
    }
}
