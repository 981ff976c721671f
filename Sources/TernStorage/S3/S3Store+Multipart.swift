public import Foundation
import TernCrypto

/// Large puts as S3 multipart uploads with a full-object CRC32C.
///
/// CreateMultipartUpload asks for `x-amz-checksum-algorithm: CRC32C` with
/// `x-amz-checksum-type: FULL_OBJECT`; every UploadPart carries the part's CRC32C (S3 checks it on
/// arrival); CompleteMultipartUpload lists each part's ETag and CRC32C and sends the whole object's
/// CRC32C, which Tern computes by combining the part CRCs (no second read of the file) and S3
/// checks against its own. Afterwards a HEAD reads the object's CRC32C back and compares it with
/// `options.crc32c` (or the combined value): a mismatch is an ``StoreError/Kind/integrity`` error.
/// A store that answers with a composite checksum (`crc-of-part-crcs-N`) is checked against the
/// composite of Tern's part CRCs instead.
///
/// Up to ``S3Store/maxParallelParts`` parts are in flight at once; the state is checkpointed after
/// the upload starts and after every part. Resuming asks S3 (ListParts) which parts it holds: a
/// checkpointed part is kept when S3 lists it with the same size and ETag (and CRC32C, when S3 reports
/// one); any other part is sent again. When the upload is gone (aborted, expired, or completed
/// before the crash), a fresh one is started, unless the object already holds exactly the source.
extension S3Store {
    /// S3's smallest part (except the last).
    public static let minimumPartSize: Int64 = 5 << 20
    static let checksumAlgorithm = "CRC32C"
    static let checksumType = "FULL_OBJECT"

    /// Writes `source` to `key` as a multipart upload that survives a crash of this process; see the
    /// extension's documentation for the protocol and ``BlobStore/putLarge(_:from:options:partSize:resuming:checkpoint:)``
    /// for the contract.
    @discardableResult
    public func putLarge(
        _ key: String, from source: BlobSource, options: PutOptions, partSize: Int64,
        resuming: LargeUpload?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        let contentType = try self.contentType(options, key: key)
        let total = source.length
        // S3 refuses Complete with If-None-Match when an object is there; asking first spares
        // uploading gigabytes only to be refused at the end.
        if options.createOnly, resuming == nil, try await head(key) != nil {
            throw StoreError(.alreadyExists, store: url.description, key: key, message: "an object already exists (create-only put)")
        }
        var upload: LargeUpload
        if let resuming, resuming.key == key, resuming.totalSize == total, resuming.partSize >= Self.minimumPartSize,
           resuming.partCount <= 10_000, !resuming.uploadID.isEmpty {
            if let resumed = try await reconcile(resuming, checkpoint: checkpoint) {
                upload = resumed
            } else {
                // The upload is gone. One that completed before its answer was recorded left the object.
                if let existing = try await head(key), existing.size == total, let crc = existing.crc32c,
                   crc == (try await expectedCRC(options, source: source, key: key)) {
                    return existing
                }
                upload = try await create(key: key, name: name, contentType: contentType, total: total,
                                          partSize: resuming.partSize, checkpoint: checkpoint)
            }
        } else {
            let size = max(Self.minimumPartSize, LargeUpload.partSize(for: total, preferred: partSize))
            upload = try await create(key: key, name: name, contentType: contentType, total: total, partSize: size, checkpoint: checkpoint)
        }

        try await sendParts(&upload, name: name, source: source, progress: options.progress, checkpoint: checkpoint)

        let parts = upload.parts.sorted { $0.number < $1.number }
        let combined = parts.dropFirst().reduce(parts.first?.crc32c ?? 0) { CRC32C.combine($0, $1.crc32c, lengthOfSecond: Int($1.size)) }
        if let expected = options.crc32c, expected != combined {
            try? await abortLarge(upload)
            throw StoreError(.integrity, store: url.description, key: key,
                             message: "the parts sent have CRC32C \(crc32cHex(combined)), the source should have \(crc32cHex(expected)): it changed while being uploaded; the upload was aborted")
        }
        return try await complete(upload, name: name, crc: combined, createOnly: options.createOnly)
    }

    /// Aborts the multipart upload (`AbortMultipartUpload`); one S3 no longer knows is fine.
    public func abortLarge(_ upload: LargeUpload) async throws(StoreError) {
        let name = try objectName(upload.key)
        _ = try await send(key: upload.key, accept: [404]) { credentials in
            request("DELETE", name, query: [("uploadId", upload.uploadID)], credentials: credentials)
        }
    }

    /// The whole source's CRC32C: the caller's, or read from the source.
    private func expectedCRC(_ options: PutOptions, source: BlobSource, key: String) async throws(StoreError) -> UInt32 {
        if let given = options.crc32c { return given }
        return try await source.crc32c(store: url.description, key: key)
    }

    private func record(_ upload: LargeUpload, _ checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) {
        do {
            try await checkpoint(upload)
        } catch {
            throw StoreError(.io, store: url.description, key: upload.key, message: "cannot record the upload's state: \(error)")
        }
    }

    // MARK: Steps

    private func create(
        key: String, name: String, contentType: String, total: Int64, partSize: Int64,
        checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> LargeUpload {
        // Repeating a lost CreateMultipartUpload leaves an empty upload behind, which
        // abortLeftoverUploads removes; that is better than failing the transfer.
        let response = try await send(key: key) { credentials in
            request("POST", name, query: [("uploads", "")],
                    headers: [("Content-Type", contentType), ("x-amz-checksum-algorithm", Self.checksumAlgorithm),
                              ("x-amz-checksum-type", Self.checksumType)],
                    credentials: credentials, idempotent: true)
        }
        guard let uploadID = XMLText.first("UploadId", in: response.bodyText), !uploadID.isEmpty else {
            throw StoreError(.rejected, store: url.description, key: key, message: "S3 started a multipart upload without an UploadId")
        }
        let upload = LargeUpload(uploadID: uploadID, key: key, partSize: partSize, totalSize: total)
        try await record(upload, checkpoint)
        return upload
    }

    /// What S3 holds of `upload`, applied to its checkpointed parts; nil when the upload is gone.
    private func reconcile(_ upload: LargeUpload, checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) -> LargeUpload? {
        guard let listed = try await listParts(upload) else { return nil }
        var kept = upload
        kept.parts = upload.parts.filter { part in
            guard part.number >= 1, part.number <= upload.partCount, part.size == upload.range(ofPart: part.number).count,
                  let stored = listed[part.number] else { return false }
            return stored.size == part.size && Self.unquoted(stored.etag) == Self.unquoted(part.tag)
                && (stored.crc32c == nil || stored.crc32c == part.crc32c)
        }
        if kept.parts != upload.parts { try await record(kept, checkpoint) }
        return kept
    }

    struct ListedPart {
        var size: Int64
        var etag: String
        var crc32c: UInt32?
    }

    /// The parts S3 holds for `upload` by number; nil when S3 no longer knows the upload.
    private func listParts(_ upload: LargeUpload) async throws(StoreError) -> [Int: ListedPart]? {
        let name = try objectName(upload.key)
        var parts: [Int: ListedPart] = [:]
        var marker: String?
        repeat {
            var query: [(name: String, value: String)] = [("uploadId", upload.uploadID), ("max-parts", "1000")]
            if let marker { query.append(("part-number-marker", marker)) }
            let pageQuery = query
            let response = try await send(key: upload.key, accept: [404]) { credentials in
                request("GET", name, query: pageQuery, credentials: credentials)
            }
            if response.status == 404 { return nil }
            let text = response.bodyText
            for entry in XMLText.elements("Part", in: text) {
                guard let number = XMLText.first("PartNumber", in: entry).flatMap({ Int($0) }),
                      let size = XMLText.first("Size", in: entry).flatMap({ Int64($0) }),
                      let etag = XMLText.first("ETag", in: entry) else { continue }
                let crc = XMLText.first("ChecksumCRC32C", in: entry).flatMap { try? CRC32C.value(base64Encoded: $0) }
                parts[number] = ListedPart(size: size, etag: etag, crc32c: crc)
            }
            let truncated = XMLText.first("IsTruncated", in: text) == "true"
            marker = truncated ? XMLText.first("NextPartNumberMarker", in: text) : nil
        } while marker != nil
        return parts
    }

    /// Sends every part `upload` lacks, several at once, checkpointing after each.
    private func sendParts(
        _ upload: inout LargeUpload, name: String, source: BlobSource, progress: TransferProgress?,
        checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) {
        let done = Set(upload.parts.map(\.number))
        let missing = (1...upload.partCount).filter { !done.contains($0) }
        guard !missing.isEmpty else { return }
        let plan = upload
        var state = upload
        do {
            try await withThrowingTaskGroup(of: LargeUpload.Part.self) { group in
                var next = missing.makeIterator()
                for _ in 0..<max(1, maxParallelParts) {
                    guard let number = next.next() else { break }
                    group.addTask { try await sendPart(number, of: plan, name: name, source: source, progress: progress) }
                }
                while let part = try await group.next() {
                    state.parts.append(part)
                    state.parts.sort { $0.number < $1.number }
                    try await record(state, checkpoint)
                    if let number = next.next() {
                        group.addTask { try await sendPart(number, of: plan, name: name, source: source, progress: progress) }
                    }
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, store: url.description, key: upload.key, message: "the upload stopped: \(error)")
        }
        upload = state
    }

    /// UploadPart with the part's CRC32C, which S3 checks against the bytes it receives.
    private func sendPart(
        _ number: Int, of upload: LargeUpload, name: String, source: BlobSource, progress: TransferProgress?
    ) async throws(StoreError) -> LargeUpload.Part {
        let range = upload.range(ofPart: number)
        let slice = source.slice(offset: range.lowerBound, length: Int64(range.count))
        let crc = try await slice.crc32c(store: url.description, key: upload.key)
        let checksum = CRC32C.base64Encoded(crc)
        let response = try await send(key: upload.key) { credentials in
            var part = request("PUT", name, query: [("partNumber", "\(number)"), ("uploadId", upload.uploadID)],
                               headers: [("x-amz-checksum-crc32c", checksum), ("x-amz-sdk-checksum-algorithm", Self.checksumAlgorithm)],
                               payload: .unsigned(slice), credentials: credentials)
            part.progress = progress
            return part
        }
        guard let etag = response.headers["ETag"], !etag.isEmpty else {
            throw StoreError(.rejected, store: url.description, key: upload.key, message: "S3 accepted part \(number) without an ETag")
        }
        if let echoed = response.headers["x-amz-checksum-crc32c"], echoed != checksum {
            throw StoreError(.integrity, store: url.description, key: upload.key,
                             message: "S3 reported CRC32C \(echoed) for part \(number), Tern sent \(checksum)")
        }
        return LargeUpload.Part(number: number, size: Int64(range.count), tag: etag, crc32c: crc)
    }

    /// CompleteMultipartUpload, then the object's CRC32C read back and compared with `crc`.
    private func complete(_ upload: LargeUpload, name: String, crc: UInt32, createOnly: Bool) async throws(StoreError) -> ObjectInfo {
        let parts = upload.parts.sorted { $0.number < $1.number }
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLText.escape(part.tag))</ETag>"
                + "<ChecksumCRC32C>\(CRC32C.base64Encoded(part.crc32c))</ChecksumCRC32C></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        var headers = [("Content-Type", "application/xml"), ("x-amz-checksum-crc32c", CRC32C.base64Encoded(crc)),
                       ("x-amz-checksum-type", Self.checksumType)]
        if createOnly { headers.append(("If-None-Match", "*")) }
        let fields = headers
        let tries = S3TryCounter()
        do {
            _ = try await sendChecked(key: upload.key, tries: tries) { credentials in
                // Completing the same upload twice has the same effect as once.
                request("POST", name, query: [("uploadId", upload.uploadID)], headers: fields, payload: .hashed(body),
                        credentials: credentials, idempotent: true)
            }
        } catch where error.status == 404 || (error.status == 412 && createOnly) {
            // After a lost answer, a retry finds the upload gone (404) or, create-only, the object there
            // (412): the first try completed it.
            if tries.value > 1, let existing = try await head(upload.key), existing.size == upload.totalSize, existing.crc32c == crc {
                return existing
            }
            guard error.status == 412 else { throw error }
            try? await abortLarge(upload)
            throw StoreError(.alreadyExists, store: url.description, key: upload.key, status: 412, code: error.code,
                             message: "an object already exists (create-only put); the upload was aborted")
        }
        return try await verify(upload, parts: parts, crc: crc)
    }

    /// Reads the completed object's facts and checks its size and CRC32C against what was sent.
    private func verify(_ upload: LargeUpload, parts: [LargeUpload.Part], crc: UInt32) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(upload.key)
        let response = try await send(key: upload.key) { credentials in
            request("HEAD", name, headers: [("x-amz-checksum-mode", "ENABLED")], credentials: credentials)
        }
        var info = try objectInfo(key: upload.key, headers: response.headers)
        guard info.size == upload.totalSize else {
            throw await discard(info, because: "S3 holds \(info.size) bytes after the upload, Tern sent \(upload.totalSize)")
        }
        if let stored = info.crc32c {
            guard stored == crc else {
                throw await discard(info, because: "S3's CRC32C of the object is \(crc32cHex(stored)), Tern sent bytes with CRC32C \(crc32cHex(crc))")
            }
        } else if let composite = response.headers["x-amz-checksum-crc32c"], composite.contains("-") {
            // A composite checksum: the CRC32C of the parts' big-endian CRC32Cs, then "-" and their count.
            var partCRCs: [UInt8] = []
            for part in parts {
                partCRCs += [UInt8(truncatingIfNeeded: part.crc32c >> 24), UInt8(truncatingIfNeeded: part.crc32c >> 16),
                             UInt8(truncatingIfNeeded: part.crc32c >> 8), UInt8(truncatingIfNeeded: part.crc32c)]
            }
            let expected = "\(CRC32C.base64Encoded(CRC32C.checksum(partCRCs)))-\(parts.count)"
            guard composite == expected else {
                throw await discard(info, because: "S3's composite CRC32C is \(composite), Tern's parts give \(expected)")
            }
            // Every part's CRC32C is confirmed, so their combination is the object's.
            info.crc32c = crc
        }
        return info
    }

    /// Deletes an object that does not hold what was sent (only that version: `If-Match` its ETag),
    /// so no object with wrong bytes stays at the key; returns the integrity error to throw.
    private func discard(_ info: ObjectInfo, because why: String) async -> StoreError {
        if let name = try? objectName(info.key), let etag = info.version {
            _ = try? await send(key: info.key, accept: [404, 412]) { credentials in
                request("DELETE", name, headers: [("If-Match", "\"\(etag)\"")], credentials: credentials)
            }
        }
        return StoreError(.integrity, store: url.description, key: info.key, message: "\(why); the object was deleted")
    }

    // MARK: Leftover uploads

    /// Multipart uploads S3 holds under `prefix` (relative to the store's prefix), oldest first.
    public func multipartUploads(prefix: String = "") async throws(StoreError) -> [S3MultipartUpload] {
        let fullPrefix = url.prefix.isEmpty ? prefix : "\(url.prefix)/\(prefix)"
        var results: [S3MultipartUpload] = []
        var keyMarker: String?
        var uploadMarker: String?
        repeat {
            var query: [(name: String, value: String)] = [("uploads", ""), ("encoding-type", "url"), ("max-uploads", "1000")]
            if !fullPrefix.isEmpty { query.append(("prefix", fullPrefix)) }
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let uploadMarker { query.append(("upload-id-marker", uploadMarker)) }
            let pageQuery = query
            let response = try await send(key: prefix) { credentials in
                request("GET", nil, query: pageQuery, credentials: credentials)
            }
            let text = response.bodyText
            for entry in XMLText.elements("Upload", in: text) {
                guard let encoded = XMLText.first("Key", in: entry), let name = PercentEncoding.decode(encoded, plusIsSpace: true),
                      let uploadID = XMLText.first("UploadId", in: entry) else { continue }
                guard let key = url.key(ofObjectName: name), key.hasPrefix(prefix) else { continue }
                let initiated = XMLText.first("Initiated", in: entry).flatMap(Self.parseDate)
                results.append(S3MultipartUpload(key: key, uploadID: uploadID, initiated: initiated))
            }
            let truncated = XMLText.first("IsTruncated", in: text) == "true"
            keyMarker = truncated ? XMLText.first("NextKeyMarker", in: text).flatMap { PercentEncoding.decode($0, plusIsSpace: true) } : nil
            uploadMarker = truncated ? XMLText.first("NextUploadIdMarker", in: text) : nil
        } while keyMarker != nil
        return results.sorted { ($0.initiated ?? .distantPast) < ($1.initiated ?? .distantPast) }
    }

    /// Aborts the multipart uploads under `prefix` started before `olderThan` (uploads a crashed
    /// transfer left, which S3 keeps, and bills, until aborted); returns those aborted. Uploads S3 gives
    /// no start time for are left alone.
    @discardableResult
    public func abortLeftoverUploads(prefix: String = "", olderThan cutoff: Date) async throws(StoreError) -> [S3MultipartUpload] {
        let leftovers = try await leftoverUploads(prefix: prefix, olderThan: cutoff)
        for upload in leftovers { try await abort(upload) }
        return leftovers
    }

    /// The multipart uploads under `prefix` started before `cutoff`, oldest first.
    public func leftoverUploads(prefix: String = "", olderThan cutoff: Date) async throws(StoreError) -> [S3MultipartUpload] {
        try await multipartUploads(prefix: prefix).filter { $0.initiated.map { $0 < cutoff } ?? false }
    }

    /// Aborts one upload `multipartUploads` listed.
    public func abort(_ upload: S3MultipartUpload) async throws(StoreError) {
        try await abortLarge(LargeUpload(uploadID: upload.uploadID, key: upload.key, partSize: Self.minimumPartSize, totalSize: 0))
    }

    static func parseDate(_ text: String) -> Date? {
        let precise = ISO8601DateFormatter()
        precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}

/// A multipart upload S3 holds (started, neither completed nor aborted).
public struct S3MultipartUpload: Sendable, Hashable {
    /// Relative to the store's prefix.
    public var key: String
    public var uploadID: String
    public var initiated: Date?

    public init(key: String, uploadID: String, initiated: Date?) {
        self.key = key
        self.uploadID = uploadID
        self.initiated = initiated
    }
}
