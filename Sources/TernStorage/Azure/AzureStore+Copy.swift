import Foundation

/// Server-side copy within the container.
///
/// A source of at most 256 MiB is copied with Copy Blob From URL (`x-ms-requires-sync: true`):
/// done when the answer arrives. That operation does not accept the destination's SharedKey for the
/// source, so the source URL carries a read-only SAS for that one blob, valid for an hour (with a SAS
/// token instead of a key, the caller's token). A larger source is copied with Copy Blob, which
/// the service may finish later (`x-ms-copy-status: pending`); Tern then asks the destination's
/// properties until the copy succeeds or fails. Both pin the source's ETag
/// (`x-ms-source-if-match`), so a source replaced meanwhile fails the copy rather than copying
/// other bytes.
extension AzureStore {
    @discardableResult
    public func copy(from sourceKey: String, to key: String) async throws(StoreError) -> ObjectInfo {
        let sourceName = try blobName(sourceKey)
        let name = try blobName(key)
        guard let source = try await head(sourceKey) else {
            throw StoreError(.notFound, store: url.description, key: sourceKey, status: 404, message: "no such blob to copy")
        }
        guard let sourceETag = source.version else {
            throw StoreError(.rejected, store: url.description, key: sourceKey, message: "Azure described the blob without an ETag")
        }
        let sync = source.size <= syncCopyLimit
        let sourceSAS: String?
        switch credentials.method {
        case .sharedKey(let signer):
            sourceSAS = sync
                ? try AzureSAS.blobToken(signer: signer, container: url.container, blob: sourceName, permissions: "r",
                                         expiry: now().addingTimeInterval(3600), protocols: endpoint.secure ? "https" : nil)
                : nil
        case .sas(let token):
            sourceSAS = token.query
        }
        let response = try await transport.perform(key: key) {
            copyRequest(name: name, sourceName: sourceName, sourceSAS: sourceSAS, sourceETag: "\"\(sourceETag)\"", sync: sync)
        }
        let status = response.headers["x-ms-copy-status"]?.lowercased()
        if status == nil || status == "success" {
            return ObjectInfo(key: key, size: source.size, crc32c: nil, version: response.headers["ETag"].map(AzureXML.unquoted))
        }
        guard status == "pending" else {
            throw StoreError(.rejected, store: url.description, key: key, status: response.status,
                             message: "the copy from \(sourceKey) ended \(status ?? "")")
        }
        return try await awaitCopy(key: key, copyID: response.headers["x-ms-copy-id"])
    }

    /// Asks the destination's properties until the copy `copyID` is no longer pending.
    private func awaitCopy(key: String, copyID: String?) async throws(StoreError) -> ObjectInfo {
        for poll in 0..<copyStatusPolls {
            do {
                try await retry.sleep(min(.seconds(2), .milliseconds(100) * (1 << min(poll, 5))))
            } catch {
                throw StoreError(.transient, store: url.description, key: key, message: "cancelled while waiting for a copy to finish")
            }
            guard let (info, response) = try await properties(key) else {
                throw StoreError(.notFound, store: url.description, key: key, status: 404, message: "the copy's destination disappeared while it was pending")
            }
            if let copyID, let current = response.headers["x-ms-copy-id"], current != copyID {
                throw StoreError(.preconditionFailed, store: url.description, key: key, message: "another copy to this blob started while Tern's was pending")
            }
            switch response.headers["x-ms-copy-status"]?.lowercased() {
            case "pending":
                continue
            case "success", nil:
                return info
            case let other?:
                let why = response.headers["x-ms-copy-status-description"].map { ": \($0)" } ?? ""
                throw StoreError(.rejected, store: url.description, key: key, message: "the copy ended \(other)\(why)")
            }
        }
        throw StoreError(.transient, store: url.description, key: key, message: "the copy was still pending after \(copyStatusPolls) status checks")
    }
}
