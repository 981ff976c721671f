import Foundation
import TernCrypto

/// Signs Blob service requests with an account key (SharedKey authorization).
///
/// The string to sign is, per the Blob service's rules (versions 2015-02-21 and later): the verb;
/// the values of `Content-Encoding`, `Content-Language`, `Content-Length` (empty when zero),
/// `Content-MD5`, `Content-Type`, `Date`, `If-Modified-Since`, `If-Match`, `If-None-Match`,
/// `If-Unmodified-Since` and `Range`, one per line; every `x-ms-*` header as `name:value` (names
/// lowercased, sorted the way the service sorts them); then the canonicalized resource:
/// `/ACCOUNT` followed by the request's encoded URL path, and each query parameter as
/// `\nname:value` (names lowercased and sorted, values decoded, repeated values joined by commas).
/// The signature is the base64 HMAC-SHA256 of that string under the base64-decoded account key,
/// sent as `Authorization: SharedKey ACCOUNT:SIGNATURE`.
///
/// With a path-style endpoint (the emulator's `http://127.0.0.1:10000/ACCOUNT`), the URL path
/// already starts with the account, so it appears twice in the resource
/// (`/devstoreaccount1/devstoreaccount1/container/blob`), as the service and the Azure SDKs expect.
///
/// The request must already carry `x-ms-date` and `x-ms-version`. The key never appears in the
/// signer's description.
public struct AzureSigner: Sendable, CustomStringConvertible, CustomReflectable {
    public let account: String
    private let key: [UInt8]

    /// - Parameter key: the account key as the portal shows it (standard base64).
    /// - Throws: ``StoreError/Kind/credentials`` when the key is not base64; the message never
    ///   contains the key.
    public init(account: String, key: String) throws(StoreError) {
        try self.init(account: account, key: key, store: "az://\(account)", origin: "the account key")
    }

    /// - Parameters:
    ///   - store: the store named in errors.
    ///   - origin: where the key came from, for errors (`AZURE_STORAGE_KEY`, a file).
    init(account: String, key: String, store: String, origin: String) throws(StoreError) {
        let trimmed = key.trimmingCharacters(in: .whitespacesAndNewlines)
        let decoded: [UInt8]
        do {
            decoded = try Base64.decode(trimmed)
        } catch {
            throw StoreError(.credentials, store: store, message: "\(origin) is not a base64 account key")
        }
        guard !decoded.isEmpty else {
            throw StoreError(.credentials, store: store, message: "\(origin) is empty")
        }
        self.account = account
        self.key = decoded
    }

    public var description: String { "AzureSigner(account: \(account))" }
    public var customMirror: Mirror { Mirror(self, children: ["account": account]) }

    /// Adds the `Authorization` header.
    public func sign(_ request: inout HTTPRequest) {
        request.headers.set("Authorization", authorization(for: request))
    }

    /// `SharedKey ACCOUNT:SIGNATURE` for `request`.
    public func authorization(for request: HTTPRequest) -> String {
        "SharedKey \(account):\(signature(of: stringToSign(for: request)))"
    }

    /// The base64 HMAC-SHA256 of `text` under the account key (also what signs a SAS).
    public func signature(of text: String) -> String {
        Base64.encode(HMACSHA256.authenticate(message: text, key: key).bytes)
    }

    /// The exact string SharedKey signs for `request`.
    public func stringToSign(for request: HTTPRequest) -> String {
        var lines = [request.method]
        let length = request.contentLength ?? 0
        for name in Self.standardHeaders {
            if name == "Content-Length" {
                lines.append(length > 0 ? "\(length)" : "")
            } else {
                lines.append(request.headers[name] ?? "")
            }
        }
        var text = lines.joined(separator: "\n") + "\n"
        for (name, value) in Self.canonicalHeaders(request.headers) {
            text += "\(name):\(value)\n"
        }
        text += canonicalResource(path: request.url.path, query: request.url.query)
        return text
    }

    static let standardHeaders = [
        "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
        "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range",
    ]

    /// The `x-ms-*` headers, lowercased and in the service's order, values trimmed.
    static func canonicalHeaders(_ headers: HTTPHeaders) -> [(String, String)] {
        var merged: [String: [String]] = [:]
        for field in headers {
            let name = field.name.lowercased()
            guard name.hasPrefix("x-ms-") else { continue }
            merged[name, default: []].append(field.value.trimmingCharacters(in: .whitespaces))
        }
        return merged.keys.sorted(by: headerOrder).map { ($0, merged[$0]!.joined(separator: ",")) }
    }

    /// The order the service sorts header names in: a culture-aware comparison, not a byte order.
    /// First the names are compared with `-` and `'` passed over, symbols before digits before
    /// letters (`!#$%&*.^_`|~+`, then `0`–`9`, then `a`–`z`, case ignored), a shorter name first.
    /// Names still equal are then told apart by their hyphens and apostrophes: walking both, the
    /// name that reaches one later sorts first (so `x-ms-blobtype` < `x-ms-blob-type`).
    static func headerOrder(_ lhs: String, _ rhs: String) -> Bool {
        compareHeaderNames(Array(lhs.utf8), Array(rhs.utf8)) < 0
    }

    private static let primaryRanks: [UInt8: Int] = {
        var ranks: [UInt8: Int] = [:]
        for (rank, byte) in "!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz".utf8.enumerated() { ranks[byte] = rank + 2 }
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { ranks[byte] = ranks[byte + 32] }
        return ranks
    }()

    static func compareHeaderNames(_ lhs: [UInt8], _ rhs: [UInt8]) -> Int {
        // 0: passed over at this level; 1: the end of the name, below everything else.
        let end = 1
        let left = lhs.compactMap { primaryRanks[$0] }
        let right = rhs.compactMap { primaryRanks[$0] }
        if left != right { return left.lexicographicallyPrecedes(right) ? -1 : 1 }
        func secondary(_ name: [UInt8], _ index: Int) -> Int {
            guard index < name.count else { return end }
            switch name[index] {
            case UInt8(ascii: "'"): return 2
            case UInt8(ascii: "-"): return 3
            default: return 0
            }
        }
        var i = 0
        var j = 0
        while true {
            if i != j { return i > j ? -1 : 1 }
            let a = secondary(lhs, i)
            let b = secondary(rhs, j)
            if a == end && b == end { return 0 }
            if a == b {
                i += 1
                j += 1
            } else if a == 0 {
                i += 1
            } else if b == 0 {
                j += 1
            } else {
                return a < b ? -1 : 1
            }
        }
    }

    /// `/ACCOUNT/encoded/path` and the sorted, decoded query parameters.
    func canonicalResource(path: String, query: String) -> String {
        var text = "/\(account)\(path)"
        var parameters: [String: [String]] = [:]
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = (PercentEncoding.decode(pair[0]) ?? String(pair[0])).lowercased()
            let value = pair.count > 1 ? (PercentEncoding.decode(pair[1]) ?? String(pair[1])) : ""
            parameters[name, default: []].append(value)
        }
        for name in parameters.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let values = parameters[name]!.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            text += "\n\(name):\(values.joined(separator: ","))"
        }
        return text
    }
}
