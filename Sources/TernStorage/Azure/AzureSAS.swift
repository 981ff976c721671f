public import Foundation

/// Shared access signatures for single blobs (service SAS, signed with the account key), and the
/// caller's own SAS tokens.
///
/// A service SAS signs, in this order and one per line: permissions, start, expiry,
/// `/blob/ACCOUNT/CONTAINER/BLOB` (the name unencoded), the stored policy id, the IP range, the
/// protocol, the version, the resource (`b`), the snapshot time, the encryption scope and the five
/// response-header overrides (Tern sets none of the last seven). The token lists the parameters
/// that are set (`st`, `se`, `sp`, `spr`, `sv`, `sr`, `sig`), each percent-encoded.
public enum AzureSAS {
    /// The blob permissions a token may grant, in the order the service requires.
    public static let permissionOrder: [Character] = ["r", "a", "c", "w", "d"]

    /// A service SAS token (without a leading `?`) for one blob.
    ///
    /// - Parameters:
    ///   - permissions: letters from `racwd` (read, add, create, write, delete), any order.
    ///   - start: when the token becomes valid; nil: when the service receives it.
    ///   - protocols: `https` or `https,http`; nil allows both.
    /// - Throws: ``StoreError/Kind/rejected`` for unknown permission letters or an expiry not after
    ///   the start.
    public static func blobToken(
        signer: AzureSigner, container: String, blob: String, permissions: String, expiry: Date, start: Date? = nil,
        protocols: String? = nil, version: String = AzureStore.apiVersion
    ) throws(StoreError) -> String {
        try signBlob(signer: signer, container: container, blob: blob, permissions: permissions, expiry: expiry, start: start,
                 protocols: protocols, version: version).token
    }

    /// The token and the string it signs.
    static func signBlob(
        signer: AzureSigner, container: String, blob: String, permissions: String, expiry: Date, start: Date?,
        protocols: String?, version: String
    ) throws(StoreError) -> (token: String, stringToSign: String) {
        let store = "az://\(signer.account)/\(container)"
        let unknown = permissions.filter { !permissionOrder.contains($0) }
        guard unknown.isEmpty, !permissions.isEmpty else {
            throw StoreError(.rejected, store: store, key: blob, message: "SAS permissions must be letters from racwd, got \"\(permissions)\"")
        }
        if let start, start >= expiry {
            throw StoreError(.rejected, store: store, key: blob, message: "a SAS must expire after it starts")
        }
        let ordered = String(permissionOrder.filter { permissions.contains($0) })
        let startText = start.map(AzureDate.iso8601)
        let expiryText = AzureDate.iso8601(expiry)
        let fields = [
            ordered, startText ?? "", expiryText, "/blob/\(signer.account)/\(container)/\(blob)",
            "", "", protocols ?? "", version, "b", "", "", "", "", "", "", "",
        ]
        let stringToSign = fields.joined(separator: "\n")
        let signature = signer.signature(of: stringToSign)
        var items: [(String, String)] = []
        if let startText { items.append(("st", startText)) }
        items.append(("se", expiryText))
        items.append(("sp", ordered))
        if let protocols { items.append(("spr", protocols)) }
        items += [("sv", version), ("sr", "b"), ("sig", signature)]
        // Encoded as the Azure SDKs encode SAS values: everything but unreserved characters and '/'.
        let token = items.map { "\($0.0)=\(PercentEncoding.encode($0.1, keepSlash: true))" }.joined(separator: "&")
        return (token, stringToSign)
    }

    /// A SAS token as the caller gives it (`AZURE_STORAGE_SAS_TOKEN`, a connection string's
    /// `SharedAccessSignature`): the leading `?` dropped, checked to carry a signature.
    static func callerToken(_ text: String, store: String, origin: String) throws(StoreError) -> AzureSASToken {
        var token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if token.hasPrefix("?") { token.removeFirst() }
        let names = token.split(separator: "&").map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }
        guard names.contains("sig") else {
            throw StoreError(.credentials, store: store, message: "\(origin) is not a SAS token (it has no sig parameter)")
        }
        guard !token.contains(where: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "#" }) else {
            throw StoreError(.credentials, store: store, message: "\(origin) is not a SAS token (it holds spaces or line breaks)")
        }
        return AzureSASToken(query: token)
    }
}
