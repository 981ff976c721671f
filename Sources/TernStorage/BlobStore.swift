import Foundation

/// An object store Tern replicates checkpoints to: a local directory, S3, GCS or Azure Blob.
///
/// Keys are relative to the store's prefix (the path part of its ``StoreURL``) and use `/` as the
/// separator. Every method names the store and the key in the ``StoreError`` it throws; no method
/// ever puts a credential into an error.
///
/// Implementations retry transient failures themselves (see ``RetryPolicy``); a caller sees either
/// the result or a final error.
public protocol BlobStore: Sendable {
    /// Where this store is, with no credential in it (safe to print).
    var url: StoreURL { get }

    /// The object's facts, or nil when there is no object at `key`.
    func head(_ key: String) async throws(StoreError) -> ObjectInfo?

    /// Writes `source` to `key` in one request, with `options.crc32c` (computed here when nil) sent
    /// for the store to check on arrival. With `options.createOnly`, fails with
    /// ``StoreError/Kind/alreadyExists`` when an object is already there, and never overwrites it.
    @discardableResult
    func put(_ key: String, from source: BlobSource, options: PutOptions) async throws(StoreError) -> ObjectInfo

    /// Streams the object (or `range` of it) into `sink`, returning the object's facts.
    /// Throws ``StoreError/Kind/notFound`` when there is none.
    @discardableResult
    func get(_ key: String, range: Range<Int64>?, into sink: any BlobSink) async throws(StoreError) -> ObjectInfo

    /// Every object whose key starts with `prefix`, in key order.
    func list(prefix: String) async throws(StoreError) -> [ObjectInfo]

    /// Deletes `key`; deleting a missing object is not an error.
    func delete(_ key: String) async throws(StoreError)

    /// Server-side copy within the store; ``StoreError/Kind/unsupported`` where the store has none.
    @discardableResult
    func copy(from sourceKey: String, to key: String) async throws(StoreError) -> ObjectInfo

    /// Writes a large file in parts that survive a crash of this process.
    ///
    /// `checkpoint` is called with the upload's state after it starts and after every part; the
    /// caller persists it (Tern keeps it in PostgreSQL) and passes it back as `resuming` after a crash,
    /// so parts already accepted are not sent again. The whole-object CRC32C the store reports at the
    /// end is compared with `source`'s (`options.crc32c`), and a mismatch is an
    /// ``StoreError/Kind/integrity`` error.
    @discardableResult
    func putLarge(
        _ key: String, from source: BlobSource, options: PutOptions, partSize: Int64,
        resuming: LargeUpload?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo

    /// Abandons a large upload and frees what the store holds for it.
    func abortLarge(_ upload: LargeUpload) async throws(StoreError)
}

extension BlobStore {
    /// The whole object (or `range` of it) in memory; for small objects such as manifests.
    public func getBytes(_ key: String, range: Range<Int64>? = nil) async throws(StoreError) -> [UInt8] {
        let collector = ByteCollector()
        try await get(key, range: range, into: collector)
        return collector.bytes
    }

    @discardableResult
    public func put(_ key: String, bytes: [UInt8], createOnly: Bool = false) async throws(StoreError) -> ObjectInfo {
        try await put(key, from: .bytes(bytes), options: PutOptions(createOnly: createOnly))
    }
}

/// What a store knows about one object.
public struct ObjectInfo: Sendable, Hashable, Codable {
    /// Relative to the store's prefix.
    public var key: String
    public var size: Int64
    /// The store's own whole-object CRC32C, when it keeps one (S3 with full-object checksums, GCS,
    /// the file store; Azure keeps none).
    public var crc32c: UInt32?
    /// What pins this exact object: the S3 ETag, the GCS generation, the Azure ETag, the file
    /// store's inode and mtime. A later head with a different value means the object was replaced.
    public var version: String?

    public init(key: String, size: Int64, crc32c: UInt32? = nil, version: String? = nil) {
        self.key = key
        self.size = size
        self.crc32c = crc32c
        self.version = version
    }
}

/// The bytes a put sends: a buffer, or a range of a file read as it is sent (never loaded whole).
public enum BlobSource: Sendable, Hashable {
    case bytes([UInt8])
    case file(path: String, offset: Int64, length: Int64)

    /// A whole file.
    public static func file(_ path: String) throws(StoreError) -> BlobSource {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StoreError(.io, store: "file", key: path, message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        return .file(path: path, offset: 0, length: Int64(info.st_size))
    }

    public var length: Int64 {
        switch self {
        case .bytes(let bytes): Int64(bytes.count)
        case .file(_, _, let length): length
        }
    }

    /// The part of this source from `offset` for `length` bytes.
    public func slice(offset: Int64, length: Int64) -> BlobSource {
        switch self {
        case .bytes(let bytes): .bytes(Array(bytes[Int(offset)..<Int(offset + length)]))
        case .file(let path, let start, _): .file(path: path, offset: start + offset, length: length)
        }
    }
}

/// How a put behaves.
public struct PutOptions: Sendable {
    /// Fail instead of overwriting an object that exists (S3 and Azure `If-None-Match: *`, GCS
    /// `ifGenerationMatch=0`, the file store's link(2)).
    public var createOnly: Bool
    /// The source's CRC32C, when the caller already knows it (from the manifest); computed otherwise.
    public var crc32c: UInt32?
    public var contentType: String?
    /// Counts bytes as they are sent, for progress bars.
    public var progress: TransferProgress?

    public init(createOnly: Bool = false, crc32c: UInt32? = nil, contentType: String? = nil, progress: TransferProgress? = nil) {
        self.createOnly = createOnly
        self.crc32c = crc32c
        self.contentType = contentType
        self.progress = progress
    }
}

/// The durable state of a large upload, persisted by the caller between parts.
public struct LargeUpload: Sendable, Hashable, Codable {
    /// The store's handle: the S3 upload id, the GCS resumable session URI, the Azure block-id
    /// prefix, the file store's partial file.
    public var uploadID: String
    public var key: String
    public var partSize: Int64
    public var totalSize: Int64
    /// Parts the store has accepted, in part-number order.
    public var parts: [Part]

    public struct Part: Sendable, Hashable, Codable {
        /// 1-based, as S3 numbers them.
        public var number: Int
        public var size: Int64
        /// S3's part ETag or Azure's block id; empty where the store needs none.
        public var tag: String
        public var crc32c: UInt32

        public init(number: Int, size: Int64, tag: String, crc32c: UInt32) {
            self.number = number
            self.size = size
            self.tag = tag
            self.crc32c = crc32c
        }
    }

    public init(uploadID: String, key: String, partSize: Int64, totalSize: Int64, parts: [Part] = []) {
        self.uploadID = uploadID
        self.key = key
        self.partSize = partSize
        self.totalSize = totalSize
        self.parts = parts
    }

    /// Number of parts the object is cut into.
    public var partCount: Int { totalSize == 0 ? 1 : Int((totalSize + partSize - 1) / partSize) }

    /// The byte range of part `number` (1-based).
    public func range(ofPart number: Int) -> Range<Int64> {
        let start = Int64(number - 1) * partSize
        return start..<min(start + partSize, totalSize)
    }

    /// The part size S3 accepts for `totalSize`: `preferred`, doubled until at most 10,000 parts.
    public static func partSize(for totalSize: Int64, preferred: Int64 = 64 << 20, maxParts: Int64 = 10_000) -> Int64 {
        var size = preferred
        while (totalSize + size - 1) / size > maxParts { size *= 2 }
        return size
    }
}

/// Where a get's bytes go. Called on the thread doing the network read, in order.
public protocol BlobSink: AnyObject, Sendable {
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// A sink that keeps every byte in memory.
public final class ByteCollector: BlobSink, @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt8] = []

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        lock.withLock { storage.append(contentsOf: bytes) }
    }

    public var bytes: [UInt8] { lock.withLock { storage } }
}

/// A thread-safe byte counter shared by the transfers of one command, read by its progress bar.
public final class TransferProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var done: Int64 = 0
    private var expected: Int64
    /// The bytes the transfer will move; 0 while unknown. A restore sets it once it has read the
    /// manifest.
    public var total: Int64 {
        get { lock.withLock { expected } }
        set { lock.withLock { expected = newValue } }
    }
    /// Also counts every byte counted here (one transfer's counter feeding a command's).
    public let parent: TransferProgress?

    public init(total: Int64, parent: TransferProgress? = nil) {
        self.expected = total
        self.parent = parent
    }

    public func add(_ bytes: Int64) {
        lock.withLock { done += bytes }
        parent?.add(bytes)
    }

    /// A retried request's bytes are counted again; they really moved twice.
    public var completed: Int64 { lock.withLock { done } }
}
