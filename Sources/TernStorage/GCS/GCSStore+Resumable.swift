import Foundation
import TernCrypto

/// Large puts as GCS resumable uploads.
///
/// The session is started with the object's metadata (name, content type, whole-object CRC32C,
/// and `ifGenerationMatch=0` for create-only puts), and its URI is the ``LargeUpload/uploadID``.
/// Chunks of `partSize` bytes (rounded up to a multiple of 256 KiB, as GCS requires) are sent in
/// order with `Content-Range`; after each one GCS's `Range` answer says how far the session is,
/// and the parts below that point are checkpointed.
///
/// Resuming sends the next chunk from the checkpointed offset. GCS accepts a chunk that starts at or
/// before the bytes it holds (a replay) and answers with its true offset, which Tern follows. Tern asks
/// a session for its status (`Content-Range: bytes */TOTAL`) only when it cannot tell where the
/// session stands (a 308 without `Range`, an offset GCS refused, or every part sent but no final
/// answer): fake-gcs-server finishes a session with whatever it holds when asked (200 with an
/// off-by-one `Range`), so asking first would break resumption there. When a session is gone (GCS
/// keeps them a week; the emulator drops them once finished), an object already holding exactly the
/// source is the result; otherwise the upload starts over, once. A short object left by the
/// emulator's status answer is deleted first.
extension GCSStore {
    /// GCS wants every chunk but the last to be a multiple of this.
    static let chunkQuantum: Int64 = 256 << 10

    /// `partSize` rounded up to a multiple of 256 KiB.
    public static func chunkSize(_ partSize: Int64) -> Int64 {
        max(chunkQuantum, (partSize + chunkQuantum - 1) / chunkQuantum * chunkQuantum)
    }

    @discardableResult
    public func putLarge(
        _ key: String, from source: BlobSource, options: PutOptions, partSize: Int64,
        resuming: LargeUpload?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo {
        let name = try objectName(key)
        let contentType = try self.contentType(options, key: key)
        let expected: UInt32
        if let given = options.crc32c {
            expected = given
        } else {
            expected = try await source.crc32c(store: url.description, key: key)
        }
        let session = ResumableSession(
            store: self, key: key, name: name, contentType: contentType, source: source, expected: expected,
            createOnly: options.createOnly, progress: options.progress)
        // GCS checks ifGenerationMatch=0 itself; asking first spares uploading gigabytes only to be
        // refused at the end (and fake-gcs-server ignores the condition on resumable uploads).
        if options.createOnly, resuming == nil, try await head(key) != nil {
            throw StoreError(.alreadyExists, store: url.description, key: key, message: "an object already exists (create-only put)")
        }
        var upload: LargeUpload
        if let resuming, resuming.key == key, resuming.totalSize == source.length,
           resuming.partSize > 0, resuming.partSize % Self.chunkQuantum == 0, (try? sessionURL(resuming.uploadID)) != nil {
            upload = resuming
        } else {
            upload = try await session.start(partSize: Self.chunkSize(partSize), checkpoint: checkpoint)
        }
        var restarted = false
        while true {
            switch try await session.run(&upload, checkpoint: checkpoint) {
            case .finished(let info):
                return info
            case .gone(let why):
                // A session that finished before its answer (or its last checkpoint) was seen is gone
                // too; the object it made is the upload's result when it holds exactly the source.
                if let existing = try await head(key), existing.size == source.length, existing.crc32c == expected {
                    return existing
                }
                guard !restarted else {
                    throw StoreError(.transient, store: url.description, key: key, message: "the upload session ended again after a restart: \(why)")
                }
                restarted = true
                upload = try await session.start(partSize: upload.partSize, checkpoint: checkpoint)
            }
        }
    }

    public func abortLarge(_ upload: LargeUpload) async throws(StoreError) {
        let session = try sessionURL(upload.uploadID)
        // GCS answers a cancelled session with 499; one already gone is as good as cancelled.
        _ = try await send(key: upload.key, accept: [404, 410, 499]) { authorization in
            var headers = HTTPHeaders()
            if let authorization { headers.add("Authorization", authorization) }
            return HTTPRequest(method: "DELETE", url: session, headers: headers)
        }
    }

    /// The session URI as a URL, refused unless it is a resumable upload of this store's bucket on
    /// this store's endpoint: the bearer token is never sent anywhere a stored upload id points.
    func sessionURL(_ uploadID: String) throws(StoreError) -> HTTPURL {
        let expectedPath = (endpoint.path == "/" ? "" : endpoint.path) + "/upload\(bucketPath)/o"
        guard let parsed = HTTPURL(string: uploadID), parsed.secure == endpoint.secure, parsed.host == endpoint.host,
              parsed.port == endpoint.port, parsed.path == expectedPath,
              parsed.query.split(separator: "&").contains(where: { $0.hasPrefix("upload_id=") }) else {
            throw StoreError(.rejected, store: url.description, message: "the upload id is not a resumable upload session of this store")
        }
        return parsed
    }
}

/// One resumable upload's requests and bookkeeping.
struct ResumableSession: Sendable {
    let store: GCSStore
    let key: String
    let name: String
    let contentType: String
    let source: BlobSource
    let expected: UInt32
    let createOnly: Bool
    let progress: TransferProgress?
    var total: Int64 { source.length }
    private var storeName: String { store.url.description }

    enum Outcome {
        case finished(ObjectInfo)
        /// The session no longer exists (expired, or finished short); start a new one.
        case gone(String)
    }

    /// What GCS says after a chunk or a status query.
    private enum Answer {
        case complete(GCSObjectResource)
        case incomplete(persisted: Int64)
        /// Where the session stands is unknown (308 without Range, or the offset was refused).
        case unknown(String)
        case gone(String)
    }

    // MARK: Starting

    func start(partSize: Int64, checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) -> LargeUpload {
        let metadata = GoogleJSON.object([
            ("name", GoogleJSON.quote(name)), ("contentType", GoogleJSON.quote(contentType)),
            ("crc32c", GoogleJSON.quote(CRC32C.base64Encoded(expected))),
        ])
        let query = [("uploadType", "resumable")] + (createOnly ? [("ifGenerationMatch", "0")] : [])
        let (store, contentType, total) = (store, contentType, total)
        let response: HTTPResponse
        do {
            response = try await store.send(key: key) { authorization in
                // Starting twice only leaves an unused session, which GCS drops after a week.
                store.request("POST", "/upload\(store.bucketPath)/o", query, authorization: authorization,
                              headers: [("Content-Type", "application/json; charset=UTF-8"), ("X-Upload-Content-Type", contentType),
                                        ("X-Upload-Content-Length", "\(total)")],
                              body: .bytes(Array(metadata.utf8)), idempotent: true)
            }
        } catch where error.status == 412 && createOnly {
            throw alreadyExists(error)
        }
        guard let location = response.headers["Location"] else {
            throw StoreError(.rejected, store: storeName, key: key, status: response.status, message: "GCS started the upload without a session URI (Location)")
        }
        _ = try store.sessionURL(location)
        let upload = LargeUpload(uploadID: location, key: key, partSize: partSize, totalSize: total)
        try await record(upload, checkpoint)
        return upload
    }

    // MARK: Sending

    /// Sends what the session lacks and returns the finished object, or `.gone`.
    func run(_ upload: inout LargeUpload, checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) -> Outcome {
        let session = try store.sessionURL(upload.uploadID)
        var crcs: [Int: UInt32] = [:]
        for part in upload.parts { crcs[part.number] = part.crc32c }
        // Only a contiguous run of parts from the first says how far the session is known to be.
        var persisted: Int64 = 0
        for (index, part) in upload.parts.sorted(by: { $0.number < $1.number }).enumerated() where part.number == index + 1 {
            persisted = upload.range(ofPart: part.number).upperBound
        }
        var stalled = 0
        var lastPersisted: Int64 = -1
        while true {
            // A session that makes no progress three times in a row is refusing something.
            if persisted == lastPersisted {
                stalled += 1
                if stalled >= 3 {
                    throw StoreError(.rejected, store: storeName, key: key, message: "the upload session accepts no more bytes past \(persisted) of \(total)")
                }
            } else {
                stalled = 0
                lastPersisted = persisted
            }
            let answer: Answer
            if total > 0 && persisted >= total {
                // Every byte was accepted but the final answer was not seen: ask for it.
                answer = try await query(session)
            } else {
                let number = Int(persisted / upload.partSize) + 1
                let range = persisted..<upload.range(ofPart: number).upperBound
                if range.upperBound == total {
                    try await verifyWhole(upload, lastPart: number, crcs: &crcs, session: session)
                }
                answer = try await sendChunk(range, session: session)
            }
            switch answer {
            case .complete(let resource):
                try await sync(&upload, to: total, crcs: &crcs, checkpoint: checkpoint)
                return .finished(try await finish(resource))
            case .incomplete(let offset):
                try await sync(&upload, to: offset, crcs: &crcs, checkpoint: checkpoint)
                persisted = offset
            case .unknown:
                switch try await query(session) {
                case .complete(let resource):
                    try await sync(&upload, to: total, crcs: &crcs, checkpoint: checkpoint)
                    return .finished(try await finish(resource))
                case .incomplete(let offset):
                    try await sync(&upload, to: offset, crcs: &crcs, checkpoint: checkpoint)
                    persisted = offset
                case .unknown(let why):
                    throw StoreError(.rejected, store: storeName, key: key, message: "cannot tell where the upload session stands: \(why)")
                case .gone(let why):
                    return .gone(why)
                }
            case .gone(let why):
                return .gone(why)
            }
        }
    }

    /// PUTs `range` of the source to the session.
    private func sendChunk(_ range: Range<Int64>, session: HTTPURL) async throws(StoreError) -> Answer {
        let contentRange = range.isEmpty ? "bytes */\(total)" : "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(total)"
        let body: BlobSource? = range.isEmpty ? nil : source.slice(offset: range.lowerBound, length: Int64(range.count))
        let progress = progress
        let response: HTTPResponse
        do {
            response = try await store.send(key: key, accept: [308, 404, 410, 416]) { authorization in
                var headers = HTTPHeaders([("Content-Range", contentRange)])
                if let authorization { headers.add("Authorization", authorization) }
                // A replay of bytes GCS holds is accepted and answered with its offset: safe to retry.
                return HTTPRequest(method: "PUT", url: session, headers: headers, body: body, idempotent: true, progress: progress)
            }
        } catch where error.status == 412 && createOnly {
            throw alreadyExists(error)
        } catch where error.status == 400 {
            if let integrity = store.integrityError(error) { throw integrity }
            // An offset GCS does not hold: ask where it stands.
            return .unknown(error.message)
        }
        return try interpret(response)
    }

    /// Asks the session how far it is (`Content-Range: bytes */TOTAL`, empty body).
    private func query(_ session: HTTPURL) async throws(StoreError) -> Answer {
        let total = total
        let response: HTTPResponse
        do {
            response = try await store.send(key: key, accept: [308, 404, 410]) { authorization in
                var headers = HTTPHeaders([("Content-Range", "bytes */\(total)")])
                if let authorization { headers.add("Authorization", authorization) }
                return HTTPRequest(method: "PUT", url: session, headers: headers, idempotent: true)
            }
        } catch where error.status == 412 && createOnly {
            throw alreadyExists(error)
        }
        if response.status == 308 && response.headers["Range"] == nil { return .incomplete(persisted: 0) }
        let answer = try interpret(response)
        if case .complete(let resource) = answer, let size = resource.byteCount, size < total {
            // fake-gcs-server finishes a session with the bytes it holds when asked for its status
            // (answering 200 with an off-by-one Range). That short object must not stay.
            if let generation = resource.generation {
                let name = name
                _ = try? await store.send(key: key, accept: [404, 412]) { authorization in
                    store.request("DELETE", store.objectPath(name), [("ifGenerationMatch", generation)], authorization: authorization)
                }
            }
            return .gone("the session was finished with \(size) of \(total) bytes when asked for its status")
        }
        return answer
    }

    private func interpret(_ response: HTTPResponse) throws(StoreError) -> Answer {
        switch response.status {
        case 200, 201:
            return .complete(try store.decode(GCSObjectResource.self, response, key: key, what: "uploaded object"))
        case 308:
            // `Range: bytes=0-N`: the session holds N + 1 bytes. It counts from the first byte of the
            // object, not of the chunk.
            guard let range = response.headers["Range"] else { return .unknown("GCS answered 308 without a Range") }
            guard range.hasPrefix("bytes=0-"), let last = Int64(range.dropFirst("bytes=0-".count)), last >= -1 else {
                throw StoreError(.rejected, store: storeName, key: key, status: 308, message: "GCS answered with an unreadable Range \(range.prefix(60))")
            }
            return .incomplete(persisted: min(last + 1, total))
        case 404, 410:
            return .gone("GCS no longer knows the session (HTTP \(response.status))")
        default:
            return .unknown("HTTP \(response.status)")
        }
    }

    // MARK: Bookkeeping

    /// Records the parts wholly below `persisted` (dropping any the session does not hold) and
    /// checkpoints when that changed anything.
    private func sync(
        _ upload: inout LargeUpload, to persisted: Int64, crcs: inout [Int: UInt32],
        checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) {
        let before = upload.parts
        let layout = upload
        upload.parts.sort { $0.number < $1.number }
        upload.parts = Array(upload.parts.enumerated().prefix { $0.offset + 1 == $0.element.number && layout.range(ofPart: $0.element.number).upperBound <= persisted }.map(\.element))
        while upload.parts.count < upload.partCount {
            let number = upload.parts.count + 1
            let range = upload.range(ofPart: number)
            guard range.upperBound <= persisted, !range.isEmpty || total == 0 else { break }
            let crc = try await partCRC(number, of: upload, crcs: &crcs)
            upload.parts.append(LargeUpload.Part(number: number, size: Int64(range.count), tag: "", crc32c: crc))
        }
        if upload.parts != before { try await record(upload, checkpoint) }
    }

    private func partCRC(_ number: Int, of upload: LargeUpload, crcs: inout [Int: UInt32]) async throws(StoreError) -> UInt32 {
        if let known = crcs[number] { return known }
        let range = upload.range(ofPart: number)
        let crc = try await source.slice(offset: range.lowerBound, length: Int64(range.count)).crc32c(store: storeName, key: key)
        crcs[number] = crc
        return crc
    }

    /// Before the final chunk finishes the object: the parts' CRC32Cs must add up to the expected
    /// one, or the source changed (or the caller's checksum is wrong) and the session is cancelled.
    private func verifyWhole(_ upload: LargeUpload, lastPart: Int, crcs: inout [Int: UInt32], session: HTTPURL) async throws(StoreError) {
        var whole = CRC32C().value
        for number in 1...max(lastPart, 1) {
            let crc = try await partCRC(number, of: upload, crcs: &crcs)
            whole = CRC32C.combine(whole, crc, lengthOfSecond: upload.range(ofPart: number).count)
        }
        guard whole == expected else {
            try? await store.abortLarge(upload)
            throw StoreError(.integrity, store: storeName, key: key,
                             message: "the source's CRC32C is \(crc32cHex(whole)), expected \(crc32cHex(expected)): the upload was cancelled before finishing the object")
        }
    }

    private func finish(_ resource: GCSObjectResource) async throws(StoreError) -> ObjectInfo {
        guard let info = try store.objectInfo(resource, key: key) else {
            throw StoreError(.rejected, store: storeName, key: key, message: "GCS finished the upload without describing the object")
        }
        try await store.check(info, size: total, crc32c: expected)
        return info
    }

    private func record(_ upload: LargeUpload, _ checkpoint: @Sendable (LargeUpload) async throws -> Void) async throws(StoreError) {
        do {
            try await checkpoint(upload)
        } catch {
            throw StoreError(.io, store: storeName, key: key, message: "cannot record the upload's state: \(error)")
        }
    }

    private func alreadyExists(_ error: StoreError) -> StoreError {
        StoreError(.alreadyExists, store: storeName, key: key, status: 412, code: error.code, message: "an object already exists (create-only put)")
    }
}
