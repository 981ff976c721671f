import Foundation

/// How requests to one storage account are authorized, where that came from, and the blob
/// endpoint a connection string or key file named.
///
/// Sources, first found wins (read from ``StoreOptions/environment`` only):
/// 1. ``StoreOptions/credentialsFile``: a key file (see ``AzureKeyFile``) or a connection string;
/// 2. `AZURE_STORAGE_CONNECTION_STRING`;
/// 3. `AZURE_STORAGE_KEY`, for the account the URL names (`AZURE_STORAGE_ACCOUNT`, when set, must
///    name the same account);
/// 4. `AZURE_STORAGE_SAS_TOKEN`.
///
/// Nothing here ever puts a key or token into an error or a description.
public struct AzureCredentials: Sendable, CustomStringConvertible {
    public enum Method: Sendable {
        /// SharedKey: every request signed with the account key.
        case sharedKey(AzureSigner)
        /// A SAS token appended to every request's query.
        case sas(AzureSASToken)
    }

    public var method: Method
    /// Where the credentials were found (`AZURE_STORAGE_KEY`, `credentials_file /path`), for messages.
    public var origin: String
    /// The blob endpoint named next to the credentials (`BlobEndpoint`, `blob_endpoint`), if any.
    public var blobEndpoint: String?

    public var description: String {
        switch method {
        case .sharedKey: "SharedKey from \(origin)"
        case .sas: "SAS token from \(origin)"
        }
    }

    /// The storage emulator's published development account; it guards nothing.
    public static let developmentAccount = "devstoreaccount1"
    public static let developmentKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    /// Finds the credentials for `account` (the URL's) in the sources above.
    public static func resolve(account: String, options: StoreOptions, store: String) throws(StoreError) -> AzureCredentials {
        let environment = options.environment
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else { return nil }
            return text
        }
        if let path = options.credentialsFile, !path.isEmpty {
            return try AzureKeyFile.read(path, account: account, store: store)
        }
        if let text = value("AZURE_STORAGE_CONNECTION_STRING") {
            return try connectionString(text, account: account, store: store, origin: "AZURE_STORAGE_CONNECTION_STRING")
        }
        if let key = value("AZURE_STORAGE_KEY") {
            if let named = value("AZURE_STORAGE_ACCOUNT"), named != account {
                throw StoreError(.credentials, store: store, message: "AZURE_STORAGE_KEY is for account \(named) (AZURE_STORAGE_ACCOUNT), but the URL names \(account)")
            }
            let signer = try AzureSigner(account: account, key: key, store: store, origin: "AZURE_STORAGE_KEY")
            return AzureCredentials(method: .sharedKey(signer), origin: "AZURE_STORAGE_KEY")
        }
        if let token = value("AZURE_STORAGE_SAS_TOKEN") {
            return AzureCredentials(method: .sas(try AzureSAS.callerToken(token, store: store, origin: "AZURE_STORAGE_SAS_TOKEN")),
                                    origin: "AZURE_STORAGE_SAS_TOKEN")
        }
        throw StoreError(.credentials, store: store, message: "no Azure credentials: set AZURE_STORAGE_KEY, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN, or name a credentials_file")
    }

    /// Reads `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;BlobEndpoint=…` (also
    /// `SharedAccessSignature`, `EndpointSuffix` and `UseDevelopmentStorage=true`).
    static func connectionString(_ text: String, account: String, store: String, origin: String) throws(StoreError) -> AzureCredentials {
        var fields: [String: String] = [:]
        for part in text.split(separator: ";", omittingEmptySubsequences: true) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pair[0].trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            guard pair.count == 2, !name.isEmpty else {
                throw StoreError(.credentials, store: store, message: "\(origin) is not a connection string (expected Name=value pairs separated by ';')")
            }
            fields[name] = pair[1].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if fields["usedevelopmentstorage"]?.lowercased() == "true" {
            guard account == developmentAccount else {
                throw StoreError(.credentials, store: store, message: "\(origin) names the development account \(developmentAccount), but the URL names \(account)")
            }
            let signer = try AzureSigner(account: account, key: developmentKey, store: store, origin: origin)
            return AzureCredentials(method: .sharedKey(signer), origin: origin,
                                    blobEndpoint: fields["blobendpoint"] ?? "http://127.0.0.1:10000/\(developmentAccount)")
        }
        if let named = fields["accountname"], named != account {
            throw StoreError(.credentials, store: store, message: "\(origin) is for account \(named), but the URL names \(account)")
        }
        var endpoint = fields["blobendpoint"]
        if endpoint == nil, let suffix = fields["endpointsuffix"] {
            endpoint = "\(fields["defaultendpointsprotocol"] ?? "https")://\(account).blob.\(suffix)"
        }
        if let key = fields["accountkey"], !key.isEmpty {
            let signer = try AzureSigner(account: account, key: key, store: store, origin: "the AccountKey of \(origin)")
            return AzureCredentials(method: .sharedKey(signer), origin: origin, blobEndpoint: endpoint)
        }
        if let token = fields["sharedaccesssignature"], !token.isEmpty {
            let sas = try AzureSAS.callerToken(token, store: store, origin: "the SharedAccessSignature of \(origin)")
            return AzureCredentials(method: .sas(sas), origin: origin, blobEndpoint: endpoint)
        }
        throw StoreError(.credentials, store: store, message: "\(origin) has neither AccountKey nor SharedAccessSignature")
    }
}
