import Foundation
import TernCrypto

/// The Blob service requests the store sends, one builder per operation. Each is checked against the
/// Azure SDK's request for the same operation (Fixtures/azure/vectors.json).
extension AzureStore {
    /// Put Blob: the whole blob in one request, its CRC64 checked by the service.
    func putBlobRequest(
        name: String, body: BlobSource, createOnly: Bool, contentType: String?, checksums: AzureChecksums, writeID: String,
        progress: TransferProgress? = nil
    ) -> HTTPRequest {
        var headers = [
            ("x-ms-blob-type", "BlockBlob"), ("Content-Type", "application/octet-stream"),
            ("x-ms-content-crc64", AzureCRC64.base64Encoded(checksums.crc64)),
            (Self.crcMetadata, crc32cHex(checksums.crc32c)), (Self.writeMetadata, writeID),
        ]
        if let contentType { headers.append(("x-ms-blob-content-type", contentType)) }
        if createOnly { headers.append(("If-None-Match", "*")) }
        // Writing the same bytes to the same name again has the same effect: safe to retry.
        var put = request("PUT", path: blobPath(name), headers: headers, body: body, idempotent: true)
        put.progress = progress
        return put
    }

    /// Get Blob Properties.
    func headRequest(name: String) -> HTTPRequest {
        request("HEAD", path: blobPath(name))
    }

    /// Get Blob for `range`, only while the blob's ETag is still `etag` (quoted).
    func getRequest(name: String, range: Range<Int64>, etag: String) -> HTTPRequest {
        request("GET", path: blobPath(name), headers: [
            ("x-ms-range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"), ("If-Match", etag),
        ])
    }

    /// Delete Blob, with its snapshots (a blob that has some cannot be deleted alone).
    func deleteRequest(name: String) -> HTTPRequest {
        request("DELETE", path: blobPath(name), headers: [("x-ms-delete-snapshots", "include")])
    }

    /// List Blobs: one page of names under `prefix`, from `marker`.
    func listRequest(prefix: String, marker: String?, maxResults: Int) -> HTTPRequest {
        var query = [("restype", "container"), ("comp", "list")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let marker { query.append(("marker", marker)) }
        query.append(("maxresults", "\(maxResults)"))
        return request("GET", path: containerPath, query: query)
    }

    /// Put Block: one uncommitted block, `blockID` being the id before base64.
    func putBlockRequest(name: String, blockID: String, body: BlobSource, crc64: UInt64, progress: TransferProgress? = nil) -> HTTPRequest {
        var put = request("PUT", path: blobPath(name), query: [("comp", "block"), ("blockid", Self.encodedBlockID(blockID))],
                          headers: [("Content-Type", "application/octet-stream"), ("x-ms-content-crc64", AzureCRC64.base64Encoded(crc64))],
                          body: body, idempotent: true)
        put.progress = progress
        return put
    }

    /// Put Block List: the blob becomes the blocks `blockIDs` (ids before base64), in order.
    func putBlockListRequest(
        name: String, blockIDs: [String], createOnly: Bool, contentType: String?, crc32c: UInt32, writeID: String
    ) -> HTTPRequest {
        var headers = [("Content-Type", "application/xml"), (Self.crcMetadata, crc32cHex(crc32c)), (Self.writeMetadata, writeID)]
        if let contentType { headers.append(("x-ms-blob-content-type", contentType)) }
        if createOnly { headers.append(("If-None-Match", "*")) }
        let body = AzureXML.blockListBody(blockIDs.map(Self.encodedBlockID))
        return request("PUT", path: blobPath(name), query: [("comp", "blocklist")], headers: headers, body: .bytes(body), idempotent: true)
    }

    /// Get Block List: the committed and the uncommitted blocks.
    func getBlockListRequest(name: String) -> HTTPRequest {
        request("GET", path: blobPath(name), query: [("comp", "blocklist"), ("blocklisttype", "all")])
    }

    /// Copy Blob (`sync` false) or Copy Blob From URL (`sync` true) of `sourceName` while its ETag
    /// is `sourceETag` (quoted). `sourceSAS` authorizes the source for a synchronous copy.
    func copyRequest(name: String, sourceName: String, sourceSAS: String?, sourceETag: String, sync: Bool) -> HTTPRequest {
        let source = blobURL(sourceName).description + (sourceSAS.map { "?\($0)" } ?? "")
        var headers = [("x-ms-copy-source", source), ("x-ms-source-if-match", sourceETag)]
        if sync { headers.append(("x-ms-requires-sync", "true")) }
        return request("PUT", path: blobPath(name), headers: headers, idempotent: true)
    }

    /// Create Container.
    func createContainerRequest() -> HTTPRequest {
        request("PUT", path: containerPath, query: [("restype", "container")])
    }

    /// The base64 form of a block id, as the service takes and lists it.
    static func encodedBlockID(_ id: String) -> String {
        Base64.encode(Array(id.utf8))
    }
}
