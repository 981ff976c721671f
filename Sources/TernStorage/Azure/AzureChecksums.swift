import Foundation
import TernCrypto

/// The two checksums of what a put sends, in one read: the CRC64 the service checks each request's
/// body against, and the CRC32C Tern's manifests use.
struct AzureChecksums: Sendable, Hashable {
    var crc64: UInt64
    var crc32c: UInt32

    /// Both checksums of `source` in one pass; a file range is read on a thread of its own.
    static func of(_ source: BlobSource, store: String, key: String) async throws(StoreError) -> AzureChecksums {
        try await Blocking.run { () throws(StoreError) -> AzureChecksums in
            var crc64 = AzureCRC64()
            var crc32c = CRC32C()
            try source.readPieces(store: store, key: key) { piece in
                crc64.update(piece)
                crc32c.update(piece)
            }
            return AzureChecksums(crc64: crc64.value, crc32c: crc32c.value)
        }
    }
}
