import Foundation
import TernCrypto

/// The fields of the JSON API's object resource Tern reads. Numbers arrive as strings.
struct GCSObjectResource: Decodable, Sendable {
    var name: String
    var size: String?
    var generation: String?
    var crc32c: String?

    var byteCount: Int64? { size.flatMap { Int64($0) } }
    var checksum: UInt32? { crc32c.flatMap { try? CRC32C.value(base64Encoded: $0) } }
}

/// objects.list's page.
struct GCSObjectList: Decodable, Sendable {
    var items: [GCSObjectResource]?
    var nextPageToken: String?
}

/// objects.rewrite's answer: done, or a token to call again with.
struct GCSRewriteResponse: Decodable, Sendable {
    var done: Bool
    var rewriteToken: String?
    var resource: GCSObjectResource?
}

extension GCSStore {
    /// Decodes a JSON answer, or fails naming what was expected.
    func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse, key: String?, what: String) throws(StoreError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            throw StoreError(.rejected, store: url.description, key: key, status: response.status,
                             message: "cannot read the \(what) GCS answered: \(String(describing: error).prefix(200))")
        }
    }

    /// The resource as Tern's ``ObjectInfo``; nil when it lies outside this store's prefix.
    func objectInfo(_ resource: GCSObjectResource, key: String? = nil) throws(StoreError) -> ObjectInfo? {
        guard let objectKey = key ?? url.key(ofObjectName: resource.name) else { return nil }
        guard let size = resource.byteCount else {
            throw StoreError(.rejected, store: url.description, key: objectKey, message: "GCS described the object without a size")
        }
        return ObjectInfo(key: objectKey, size: size, crc32c: resource.checksum, version: resource.generation)
    }
}
