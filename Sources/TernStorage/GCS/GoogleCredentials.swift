/// Where a GCS store's access tokens come from, chosen once when the store is opened:
///
/// 1. a service-account key file: the target's `credentials_file` (``StoreOptions/credentialsFile``),
///    else `GOOGLE_APPLICATION_CREDENTIALS`; a file that is named but unreadable is an error, never
///    skipped;
/// 2. no token at all when `STORAGE_EMULATOR_HOST` is set: emulators check none (Google's own
///    client libraries do the same);
/// 3. the metadata server of the Google Cloud VM Tern runs on (`GCE_METADATA_HOST`, else
///    `metadata.google.internal`), first asked when the first request needs a token.
///
/// Only ``StoreOptions/environment`` is read, never the process's environment directly.
public enum GoogleCredentials: Sendable, CustomStringConvertible {
    /// A service-account key; `origin` says where its path came from.
    case serviceAccount(ServiceAccountKey, origin: String)
    /// The VM's metadata server at `host` (`host[:port]`).
    case metadataServer(host: String)
    /// No token: the endpoint is an emulator.
    case anonymous

    public static let defaultMetadataHost = "metadata.google.internal"

    /// Picks the source for `options` (see the type's documentation for the order).
    /// - Parameter store: the store's URL, for errors.
    public static func resolve(options: StoreOptions, store: String) throws(StoreError) -> GoogleCredentials {
        let environment = options.environment
        if let path = options.credentialsFile, !path.isEmpty {
            return .serviceAccount(try ServiceAccountKey(contentsOfFile: path, store: store), origin: "credentials_file \(path)")
        }
        if let path = environment["GOOGLE_APPLICATION_CREDENTIALS"], !path.isEmpty {
            return .serviceAccount(try ServiceAccountKey(contentsOfFile: path, store: store), origin: "GOOGLE_APPLICATION_CREDENTIALS \(path)")
        }
        if let emulator = environment["STORAGE_EMULATOR_HOST"], !emulator.isEmpty {
            return .anonymous
        }
        // An endpoint of one's own (`--endpoint`, a target's storage_endpoint) with no credentials
        // named is an emulator's, as with STORAGE_EMULATOR_HOST; a private gateway to real GCS
        // names a credentials_file.
        if let endpoint = options.endpoint, !endpoint.isEmpty {
            return .anonymous
        }
        let host = environment["GCE_METADATA_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultMetadataHost
        return .metadataServer(host: host)
    }

    /// What was tried before settling on the metadata server, for the error when it cannot be reached.
    static let fallbackChain = "no credentials_file, GOOGLE_APPLICATION_CREDENTIALS or STORAGE_EMULATOR_HOST is set, so the metadata server was tried"

    public var description: String {
        switch self {
        case .serviceAccount(let key, let origin): "\(key) from \(origin)"
        case .metadataServer(let host): "the metadata server at \(host)"
        case .anonymous: "no credentials (STORAGE_EMULATOR_HOST is set)"
        }
    }
}
