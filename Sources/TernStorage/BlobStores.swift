/// Opens the store a URL names.
public enum BlobStores {
    public static func open(_ url: StoreURL, options: StoreOptions = StoreOptions()) throws(StoreError) -> any BlobStore {
        switch url.scheme {
        case .file: try FileStore(url: url)
        case .s3: try S3Store(url: url, options: options)
        case .gs: try GCSStore(url: url, options: options)
        case .az: try AzureStore(url: url, options: options)
        }
    }

    public static func open(_ text: String, options: StoreOptions = StoreOptions()) throws(StoreError) -> any BlobStore {
        try open(StoreURL(parsing: text), options: options)
    }
}
