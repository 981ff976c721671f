import Foundation

/// A store's location: `file:///path`, `s3://bucket/prefix`, `gs://bucket/prefix` or
/// `az://account/container/prefix`.
///
/// Parsing checks only the shape; credentials never belong in the URL (they come from the
/// environment or the target's credentials file), and a URL carrying a user, password or query
/// string is refused so a secret cannot end up printed or stored.
public struct StoreURL: Sendable, Hashable, CustomStringConvertible, Codable {
    public enum Scheme: String, Sendable, Hashable, Codable, CaseIterable {
        case file
        case s3
        case gs
        case az
    }

    public var scheme: Scheme
    /// The bucket (S3, GCS), the storage account (Azure); empty for `file`.
    public var bucket: String
    /// The Azure container; empty elsewhere.
    public var container: String
    /// The key prefix inside the bucket, without leading or trailing `/` (for `file`, the directory,
    /// absolute).
    public var prefix: String

    public init(scheme: Scheme, bucket: String = "", container: String = "", prefix: String) {
        self.scheme = scheme
        self.bucket = bucket
        self.container = container
        self.prefix = prefix
    }

    public init(parsing text: String) throws(StoreError) {
        func invalid(_ why: String) -> StoreError {
            StoreError(.invalidURL, store: Self.redacted(text), message: why)
        }
        guard let separator = text.range(of: "://") else {
            throw invalid("not a store URL; expected file:///path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix")
        }
        let schemeText = String(text[..<separator.lowerBound]).lowercased()
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw invalid("unknown scheme \"\(schemeText)\"; expected file, s3, gs or az")
        }
        let rest = String(text[separator.upperBound...])
        if rest.contains("?") || rest.contains("#") {
            throw invalid("a store URL takes no query or fragment (credentials come from the environment or credentials_file, never the URL)")
        }
        if scheme == .file {
            guard rest.hasPrefix("/") else { throw invalid("file URLs are absolute: file:///path (three slashes)") }
            let path = "/" + rest.split(separator: "/").joined(separator: "/")
            if rest.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) {
                throw invalid("the path must not contain . or .. segments")
            }
            self.init(scheme: .file, prefix: path)
            return
        }
        let parts = rest.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let first = parts.first, !first.isEmpty else { throw invalid("the \(scheme == .az ? "account" : "bucket") name is missing") }
        if first.contains("@") || first.contains(":") {
            throw invalid("a store URL takes no user, password or port; use --endpoint or the standard variables for the endpoint")
        }
        if parts.contains(where: { $0 == ".." || $0 == "." }) {
            throw invalid("the prefix must not contain . or .. segments")
        }
        switch scheme {
        case .s3, .gs:
            guard Self.isBucketName(first) else {
                throw invalid("\"\(first)\" is not a valid bucket name (3–63 characters: lowercase letters, digits, '.', '-', '_')")
            }
            self.init(scheme: scheme, bucket: first, prefix: parts.dropFirst().joined(separator: "/"))
        case .az:
            guard first.count >= 3, first.count <= 24, first.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber) }) else {
                throw invalid("\"\(first)\" is not a valid storage account name (3–24 lowercase letters and digits)")
            }
            guard parts.count >= 2 else { throw invalid("the container is missing: az://account/container/prefix") }
            let container = parts[1]
            guard container.count >= 3, container.count <= 63,
                  container.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
                throw invalid("\"\(container)\" is not a valid container name (3–63 lowercase letters, digits and '-')")
            }
            self.init(scheme: .az, bucket: first, container: container, prefix: parts.dropFirst(2).joined(separator: "/"))
        case .file:
            fatalError("handled above")
        }
    }

    public var description: String {
        switch scheme {
        case .file: "file://\(prefix)"
        case .s3, .gs: "\(scheme.rawValue)://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)")
        case .az: "az://\(bucket)/\(container)" + (prefix.isEmpty ? "" : "/\(prefix)")
        }
    }

    /// The full object name inside the bucket (or the absolute path for `file`) of `key`.
    public func objectName(_ key: String) -> String {
        prefix.isEmpty ? key : (key.isEmpty ? prefix : "\(prefix)/\(key)")
    }

    /// The key relative to the prefix of a full object name, or nil when it lies outside the prefix.
    public func key(ofObjectName name: String) -> String? {
        if prefix.isEmpty { return name }
        guard name.hasPrefix(prefix + "/") else { return nil }
        return String(name.dropFirst(prefix.count + 1))
    }

    /// S3 and GCS bucket naming rules (the common subset).
    static func isBucketName(_ name: String) -> Bool {
        guard (3...63).contains(name.count) else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }
    }

    /// `text` cut before any query string or user info, for error messages.
    static func redacted(_ text: String) -> String {
        var result = text
        if let question = result.firstIndex(of: "?") { result = String(result[..<question]) + "?…" }
        if let separator = result.range(of: "://"), let at = result[separator.upperBound...].firstIndex(of: "@") {
            result = String(result[..<separator.upperBound]) + "…@" + String(result[result.index(after: at)...])
        }
        return result
    }
}
