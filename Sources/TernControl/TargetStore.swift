public import TernModel
public import TernStorage

/// The store a target keeps its checkpoints in, opened with the target's own credentials file and
/// region (credentials themselves come from the environment or that file, never the database).
public enum TargetStore {
    /// Opens `target`'s store. `endpoint` and `credentialsFile` override what the target says (the
    /// CLI's `--endpoint` and `--credentials-file`).
    public static func open(_ target: TargetDefinition, endpoint: String? = nil, credentialsFile: String? = nil) throws(StoreError) -> (store: any BlobStore, url: StoreURL) {
        let url = try StoreURL(parsing: target.storage)
        let options = StoreOptions(endpoint: endpoint ?? target.storageEndpoint, credentialsFile: credentialsFile ?? target.credentialsFile,
                                   region: target.region)
        return (try BlobStores.open(url, options: options), url)
    }
}
