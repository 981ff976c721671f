import Foundation
import TernCrypto

/// Large puts as block blobs: Put Block for each part, then Put Block List.
///
/// The ``LargeUpload/uploadID`` is a random `tern-<16 hex>`; part N's block id is the base64 of
/// `<uploadID>-<N as 6 digits>`, so every id of the blob has the same length (as Azure requires) and
/// two uploads to the same key never mistake each other's blocks. Each Put Block carries the block's
/// CRC64, which the service checks (Azure's L1: it keeps no whole-blob checksum, so the per-block
/// check is what proves the bytes arrived intact); the part's CRC32C is kept in the checkpoint, and
/// the parts' CRC32Cs must add up to the caller's `options.crc32c` before the blob is committed. The
/// state is checkpointed after every block.
///
/// Resuming first reads the blob's properties: when its `ternwrite` metadata is this upload's id,
/// the commit went through before its answer (or the caller's record of it) was seen, and the blob
/// is the result. Otherwise Get Block List (`blocklisttype=all`) says which blocks the service holds
/// and only the missing ones are sent: a checkpointed part whose block is gone (uncommitted blocks
/// expire about seven days after the blob's last change) is sent again.
///
/// Put Block List names every block as `Latest`, with `If-None-Match: *` for a create-only put. After
/// the commit the blob's properties are read back: its ETag must be the commit's and its size the
/// source's.
///
/// Aborting deletes nothing: the service has no call that drops uncommitted blocks of a blob that
/// is not committed, and it discards them itself about seven days after the last change.
extension AzureStore {
    @discardableResult
    public func putLarge(
        _ key: String, from source: BlobSource, options: PutOptions, partSize: Int64,
        resuming: LargeUpload?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo {
        let name = try blobName(key)
        let contentType = try self.contentType(options, key: key)
        let total = source.length
        // A block must hold at least one byte: an empty blob is one Put Blob.
        if total == 0 { return try await put(key, from: source, options: options) }

        var upload: LargeUpload
        if let resuming, resuming.key == key, resuming.totalSize == total, resuming.partSize > 0,
           resuming.partSize <= Self.maxBlockSize, Int64(resuming.partCount) <= Self.maxBlocks, Self.isUploadID(resuming.uploadID) {
            upload = resuming
            if let finished = try await reconcile(&upload, name: name, expected: options.crc32c, checkpoint: checkpoint) {
                return finished
            }
        } else {
            // The commit checks If-None-Match itself; asking first spares uploading gigabytes only to
            // be refused at the end.
            if options.createOnly, try await head(key) != nil {
                throw StoreError(.alreadyExists, store: url.description, key: key, message: "a blob already exists (create-only put)")
            }
            upload = LargeUpload(uploadID: Self.newUploadID(), key: key, partSize: try blockSize(for: total, preferred: partSize, key: key),
                                 totalSize: total)
            try await record(upload, checkpoint)
        }

        for number in 1...upload.partCount where !upload.parts.contains(where: { $0.number == number }) {
            let range = upload.range(ofPart: number)
            let slice = source.slice(offset: range.lowerBound, length: Int64(range.count))
            let sums = try await AzureChecksums.of(slice, store: url.description, key: key)
            let id = Self.blockID(upload.uploadID, number)
            do {
                _ = try await transport.perform(key: key) {
                    putBlockRequest(name: name, blockID: id, body: slice, crc64: sums.crc64, progress: options.progress)
                }
            } catch {
                throw integrityError(error) ?? error
            }
            upload.parts.append(LargeUpload.Part(number: number, size: Int64(range.count), tag: Self.encodedBlockID(id), crc32c: sums.crc32c))
            upload.parts.sort { $0.number < $1.number }
            try await record(upload, checkpoint)
        }

        let whole = Self.wholeCRC32C(upload)
        if let expected = options.crc32c, expected != whole {
            throw StoreError(.integrity, store: url.description, key: key,
                             message: "the blocks' CRC32C is \(crc32cHex(whole)), expected \(crc32cHex(expected)): the source changed; nothing was committed")
        }
        return try await commit(upload, name: name, contentType: contentType, createOnly: options.createOnly, crc32c: whole)
    }

    public func abortLarge(_ upload: LargeUpload) async throws(StoreError) {
        guard Self.isUploadID(upload.uploadID) else {
            throw StoreError(.rejected, store: url.description, key: upload.key, message: "the upload id is not an Azure block upload of Tern's")
        }
        // Nothing to call: uncommitted blocks are discarded by the service (see above).
    }

    // MARK: Steps

    /// Keeps the checkpointed parts whose blocks the service still holds, or returns the blob when
    /// this upload was already committed.
    private func reconcile(
        _ upload: inout LargeUpload, name: String, expected: UInt32?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo? {
        let key = upload.key
        if let own = try await ownBlob(key, writeID: upload.uploadID, size: upload.totalSize) {
            if let expected, upload.parts.count == upload.partCount, Self.wholeCRC32C(upload) != expected {
                throw StoreError(.integrity, store: url.description, key: key,
                                 message: "the committed blocks' CRC32C is \(crc32cHex(Self.wholeCRC32C(upload))), expected \(crc32cHex(expected))")
            }
            return own
        }
        let response = try await transport.perform(key: key, accept: [404]) { getBlockListRequest(name: name) }
        var list = AzureXML.BlockList(committed: [], uncommitted: [])
        if response.status != 404 {
            guard let parsed = AzureXML.blockList(response.bodyText) else {
                throw StoreError(.rejected, store: url.description, key: key, status: response.status, message: "Azure answered Get Block List with something that is not a block list")
            }
            list = parsed
        }
        let layout = upload
        let ids = (1...upload.partCount).map { Self.encodedBlockID(Self.blockID(layout.uploadID, $0)) }
        let sizes = (1...upload.partCount).map { Int64(layout.range(ofPart: $0).count) }
        var held: [String: Int64] = [:]
        for block in list.uncommitted { held[block.id] = block.size }
        let kept = upload.parts.filter { part in
            (1...layout.partCount).contains(part.number) && part.tag == ids[part.number - 1]
                && part.size == sizes[part.number - 1] && held[part.tag] == part.size
        }
        if kept != upload.parts {
            upload.parts = kept
            try await record(upload, checkpoint)
        }
        return nil
    }

    /// Put Block List, then reads the blob back: the commit's ETag and the source's size.
    private func commit(_ upload: LargeUpload, name: String, contentType: String?, createOnly: Bool, crc32c: UInt32) async throws(StoreError) -> ObjectInfo {
        let key = upload.key
        let ids = (1...upload.partCount).map { Self.blockID(upload.uploadID, $0) }
        let response: HTTPResponse
        do {
            response = try await transport.perform(key: key) {
                putBlockListRequest(name: name, blockIDs: ids, createOnly: createOnly, contentType: contentType, crc32c: crc32c,
                                    writeID: upload.uploadID)
            }
        } catch where createOnly && (error.status == 409 || error.status == 412) {
            // A retry after a lost answer finds its own first try's commit: that is success.
            if let own = try await ownBlob(key, writeID: upload.uploadID, size: upload.totalSize) { return own }
            throw alreadyExists(error, key: key)
        }
        let committed = response.headers["ETag"].map(AzureXML.unquoted)
        guard let info = try await head(key) else {
            throw StoreError(.preconditionFailed, store: url.description, key: key, message: "the blob disappeared right after its blocks were committed")
        }
        if let committed, info.version != committed {
            throw StoreError(.preconditionFailed, store: url.description, key: key, message: "the blob was replaced right after its blocks were committed")
        }
        guard info.size == upload.totalSize else {
            throw StoreError(.integrity, store: url.description, key: key, message: "Azure holds \(info.size) bytes after the commit, Tern sent \(upload.totalSize)")
        }
        return info
    }

    private func record(_ upload: LargeUpload, _ checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) {
        do {
            try await checkpoint(upload)
        } catch {
            throw StoreError(.io, store: url.description, key: upload.key, message: "cannot record the upload's state: \(error)")
        }
    }

    /// `preferred`, doubled until the blob needs at most 50,000 blocks; at most 4,000 MiB.
    func blockSize(for total: Int64, preferred: Int64, key: String) throws(StoreError) -> Int64 {
        let size = LargeUpload.partSize(for: total, preferred: max(preferred, 1), maxParts: Self.maxBlocks)
        guard size <= Self.maxBlockSize else {
            throw StoreError(.rejected, store: url.description, key: key, message: "\(total) bytes do not fit in 50,000 blocks of at most 4,000 MiB")
        }
        return size
    }

    // MARK: Ids

    static func newUploadID() -> String {
        "tern-" + Hex.encode((0..<8).map { _ in UInt8.random(in: 0...255) })
    }

    static func isUploadID(_ id: String) -> Bool {
        id.count == 21 && id.hasPrefix("tern-") && id.dropFirst(5).allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    /// Part `number`'s block id before base64: the same length for every part of the blob.
    static func blockID(_ uploadID: String, _ number: Int) -> String {
        let digits = String(number)
        return "\(uploadID)-\(String(repeating: "0", count: max(0, 6 - digits.count)))\(digits)"
    }

    /// The CRC32C of the whole source from its parts' CRC32Cs.
    static func wholeCRC32C(_ upload: LargeUpload) -> UInt32 {
        upload.parts.sorted { $0.number < $1.number }.reduce(CRC32C().value) { whole, part in
            CRC32C.combine(whole, part.crc32c, lengthOfSecond: Int(part.size))
        }
    }
}
