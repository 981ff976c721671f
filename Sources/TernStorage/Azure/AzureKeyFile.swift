import Foundation

/// The Azure key file a target's `credentials_file` names.
///
/// Either a connection string (the whole file, as the portal shows it), or `name = value` lines
/// (blank lines and `#` comments ignored):
///
/// ```
/// # az://myaccount/… targets
/// account_name = myaccount        # optional; when present it must match the URL
/// account_key = base64…           # or: sas_token = sv=…&sig=…
/// blob_endpoint = https://…       # optional
/// ```
///
/// `connection_string = …` is accepted as a line too. The file should be readable only by its
/// owner; Tern never prints its contents.
public enum AzureKeyFile {
    static let connectionStringNames = ["defaultendpointsprotocol=", "accountname=", "accountkey=", "blobendpoint=",
                                        "sharedaccesssignature=", "usedevelopmentstorage=", "endpointsuffix="]

    public static func read(_ path: String, account: String, store: String) throws(StoreError) -> AzureCredentials {
        let origin = "credentials_file \(path)"
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw StoreError(.credentials, store: store, message: "cannot read \(origin): \(error.localizedDescription)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard let first = lines.first else {
            throw StoreError(.credentials, store: store, message: "\(origin) is empty")
        }
        let lowered = first.lowercased()
        if connectionStringNames.contains(where: { lowered.hasPrefix($0) }) {
            return try AzureCredentials.connectionString(lines.joined(), account: account, store: store, origin: origin)
        }
        var fields: [String: String] = [:]
        for (index, line) in lines.enumerated() {
            guard let equals = line.firstIndex(of: "=") else {
                throw StoreError(.credentials, store: store, message: "\(origin) line \(index + 1) is not name = value")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var value = String(line[line.index(after: equals)...])
            // A comment after the value; base64 and SAS tokens never contain " #".
            if let comment = value.range(of: " #") { value = String(value[..<comment.lowerBound]) }
            fields[name] = value.trimmingCharacters(in: .whitespaces)
        }
        let known: Set = ["account_name", "account_key", "sas_token", "blob_endpoint", "connection_string"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw StoreError(.credentials, store: store, message: "\(origin) has an unknown field \(unknown) (expected account_name, account_key, sas_token, blob_endpoint or connection_string)")
        }
        if let named = fields["account_name"], named != account {
            throw StoreError(.credentials, store: store, message: "\(origin) is for account \(named), but the URL names \(account)")
        }
        var credentials: AzureCredentials
        if let connection = fields["connection_string"] {
            credentials = try AzureCredentials.connectionString(connection, account: account, store: store, origin: origin)
        } else if let key = fields["account_key"] {
            let signer = try AzureSigner(account: account, key: key, store: store, origin: "the account_key of \(origin)")
            credentials = AzureCredentials(method: .sharedKey(signer), origin: origin)
        } else if let token = fields["sas_token"] {
            credentials = AzureCredentials(method: .sas(try AzureSAS.callerToken(token, store: store, origin: "the sas_token of \(origin)")), origin: origin)
        } else {
            throw StoreError(.credentials, store: store, message: "\(origin) has none of account_key, sas_token or connection_string")
        }
        if let endpoint = fields["blob_endpoint"] { credentials.blobEndpoint = endpoint }
        return credentials
    }
}
