import Foundation
import Glibc
import TernCrypto

/// A store in a local (or network-mounted) directory: `file:///path`.
///
/// Writes go to a temporary file beside the target, are fsynced, then renamed into place (or, for
/// create-only puts, hard-linked, which fails when the name exists), and the directory is fsynced,
/// so a crash leaves either the old object, the new one, or a temporary file that is never listed.
/// The CRC32C of every byte written is computed while copying and checked against the caller's,
/// so a source that changes mid-copy is caught; the store keeps no checksum of its own (a head
/// reports none), which is why verification of a file replica reads the bytes back (level L2).
public struct FileStore: BlobStore {
    public let url: StoreURL
    private var root: String { url.prefix }
    static let temporaryMarker = ".tern-tmp-"
    static let partialMarker = ".tern-part-"

    public init(url: StoreURL) throws(StoreError) {
        guard url.scheme == .file else {
            throw StoreError(.invalidURL, store: url.description, message: "not a file:// URL")
        }
        self.url = url
    }

    // MARK: Paths

    private func path(_ key: String) throws(StoreError) -> String {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !key.hasPrefix("/"), !key.contains("\0"),
              !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw StoreError(.rejected, store: url.description, key: key, message: "a key must be a relative path without empty, . or .. segments")
        }
        if segments.contains(where: { $0.contains(Self.temporaryMarker) || $0.contains(Self.partialMarker) }) {
            throw StoreError(.rejected, store: url.description, key: key, message: "keys containing \(Self.temporaryMarker) or \(Self.partialMarker) are reserved for the store's own files")
        }
        return "\(root)/\(key)"
    }

    private func error(_ key: String?, _ what: String, _ code: Int32 = errno) -> StoreError {
        StoreError(.io, store: url.description, key: key, message: "\(what): \(String(cString: strerror(code)))")
    }

    private func makeParents(of path: String, key: String) throws(StoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError(.io, store: url.description, key: key, message: "cannot create \(directory): \(error.localizedDescription)")
        }
    }

    private func syncDirectory(of path: String) {
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    // MARK: BlobStore

    public func head(_ key: String) async throws(StoreError) -> ObjectInfo? {
        let path = try path(key)
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw error(key, "cannot stat \(path)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError(.rejected, store: url.description, key: key, message: "\(path) is not a regular file (symbolic links are refused)")
        }
        return objectInfo(key: key, path: path, info: info)
    }

    private func objectInfo(key: String, path: String, info: stat) -> ObjectInfo {
        let version = "\(info.st_ino)-\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)-\(info.st_size)"
        return ObjectInfo(key: key, size: Int64(info.st_size), version: version)
    }

    @discardableResult
    public func put(_ key: String, from source: BlobSource, options: PutOptions) async throws(StoreError) -> ObjectInfo {
        let path = try path(key)
        return try await Blocking.run { () throws(StoreError) -> ObjectInfo in
            try makeParents(of: path, key: key)
            let temporary = "\(path)\(Self.temporaryMarker)\(UInt64.random(in: 0...UInt64.max))"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw error(key, "cannot create \(temporary)") }
            var keep = false
            defer {
                close(fd)
                if !keep { unlink(temporary) }
            }
            let crc = try write(source, to: fd, at: 0, key: key, progress: options.progress)
            if let expected = options.crc32c, expected != crc {
                throw StoreError(.integrity, store: url.description, key: key,
                                 message: "the source's CRC32C is \(crc32cHex(crc)), expected \(crc32cHex(expected)): it changed while being copied")
            }
            guard fsync(fd) == 0 else { throw error(key, "cannot fsync \(temporary)") }
            if options.createOnly {
                guard link(temporary, path) == 0 else {
                    if errno == EEXIST { throw StoreError(.alreadyExists, store: url.description, key: key, message: "an object already exists (create-only put)") }
                    throw error(key, "cannot link \(path)")
                }
                unlink(temporary)
                keep = true
            } else {
                guard rename(temporary, path) == 0 else { throw error(key, "cannot rename into \(path)") }
                keep = true
            }
            syncDirectory(of: path)
            var info = stat()
            guard lstat(path, &info) == 0 else { throw error(key, "cannot stat \(path)") }
            return ObjectInfo(key: key, size: Int64(info.st_size), crc32c: crc,
                              version: "\(info.st_ino)-\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)-\(info.st_size)")
        }
    }

    /// Copies `source` into `fd` at `offset`, returning the CRC32C of the bytes written.
    private func write(_ source: BlobSource, to fd: Int32, at offset: Int64, key: String, progress: TransferProgress?) throws(StoreError) -> UInt32 {
        var crc = CRC32C()
        switch source {
        case .bytes(let bytes):
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            guard written == bytes.count else { throw error(key, "cannot write") }
            crc.update(bytes)
            progress?.add(Int64(bytes.count))
        case .file(let sourcePath, let sourceOffset, let length):
            let input = open(sourcePath, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw error(key, "cannot open \(sourcePath)") }
            defer { close(input) }
            // Large sequential reads: the copy is bounded by memory bandwidth, not system calls.
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var done: Int64 = 0
            while done < length {
                let count = pread(input, buffer.baseAddress, Int(min(Int64(buffer.count), length - done)), off_t(sourceOffset + done))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw error(key, "cannot read \(sourcePath)")
                }
                if count == 0 { throw StoreError(.io, store: url.description, key: key, message: "\(sourcePath) ended \(length - done) bytes early (it changed while being copied)") }
                let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                crc.update(slice)
                var written = 0
                while written < count {
                    let result = pwrite(fd, slice.baseAddress! + written, count - written, off_t(offset + done) + off_t(written))
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw error(key, "cannot write")
                    }
                    written += result
                }
                done += Int64(count)
                progress?.add(Int64(count))
            }
        }
        return crc.value
    }

    @discardableResult
    public func get(_ key: String, range: Range<Int64>?, into sink: any BlobSink) async throws(StoreError) -> ObjectInfo {
        let path = try path(key)
        return try await Blocking.run { () throws(StoreError) -> ObjectInfo in
            let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ENOENT || errno == ENOTDIR { throw StoreError(.notFound, store: url.description, key: key, message: "no such object") }
                throw error(key, "cannot open \(path)")
            }
            defer { close(fd) }
            var info = stat()
            fstat(fd, &info)
            let size = Int64(info.st_size)
            let wanted = range ?? 0..<size
            guard wanted.lowerBound >= 0, wanted.upperBound <= size else {
                throw StoreError(.rejected, store: url.description, key: key, message: "range \(wanted) is outside the object's \(size) bytes")
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var position = wanted.lowerBound
            while position < wanted.upperBound {
                let count = pread(fd, buffer.baseAddress, Int(min(Int64(buffer.count), wanted.upperBound - position)), off_t(position))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw error(key, "cannot read \(path)")
                }
                if count == 0 { throw StoreError(.integrity, store: url.description, key: key, message: "the object shrank while being read") }
                do {
                    try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                } catch {
                    throw StoreError(.io, store: url.description, key: key, message: "\(error)")
                }
                position += Int64(count)
            }
            return objectInfo(key: key, path: path, info: info)
        }
    }

    public func list(prefix: String) async throws(StoreError) -> [ObjectInfo] {
        let root = root
        return try await Blocking.run { () throws(StoreError) -> [ObjectInfo] in
            var results: [ObjectInfo] = []
            // Start at the deepest directory the prefix names, so listing one step is not a walk of the store.
            let directoryPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
            try walk(directory: directoryPart.isEmpty ? root : "\(root)/\(directoryPart)", keyPrefix: directoryPart, filter: prefix, into: &results)
            return results.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        }
    }

    private func walk(directory: String, keyPrefix: String, filter: String, into results: inout [ObjectInfo]) throws(StoreError) {
        guard let stream = opendir(directory) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw error(nil, "cannot list \(directory)")
        }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." || name.contains(Self.temporaryMarker) || name.contains(Self.partialMarker) { continue }
            let key = keyPrefix.isEmpty ? name : "\(keyPrefix)/\(name)"
            let path = "\(directory)/\(name)"
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                if filter.hasPrefix(key + "/") || (key + "/").hasPrefix(filter) || filter.isEmpty {
                    try walk(directory: path, keyPrefix: key, filter: filter, into: &results)
                }
            case S_IFREG:
                if key.hasPrefix(filter) { results.append(objectInfo(key: key, path: path, info: info)) }
            default:
                continue
            }
        }
    }

    public func delete(_ key: String) async throws(StoreError) {
        let path = try path(key)
        guard unlink(path) == 0 || errno == ENOENT || errno == ENOTDIR else { throw error(key, "cannot delete \(path)") }
        syncDirectory(of: path)
    }

    @discardableResult
    public func copy(from sourceKey: String, to key: String) async throws(StoreError) -> ObjectInfo {
        let sourcePath = try path(sourceKey)
        guard let info = try await head(sourceKey) else {
            throw StoreError(.notFound, store: url.description, key: sourceKey, message: "no such object to copy")
        }
        return try await put(key, from: .file(path: sourcePath, offset: 0, length: info.size), options: PutOptions(crc32c: info.crc32c))
    }

    // MARK: Large uploads: a partial file filled part by part

    @discardableResult
    public func putLarge(
        _ key: String, from source: BlobSource, options: PutOptions, partSize: Int64,
        resuming: LargeUpload?, checkpoint: @Sendable (LargeUpload) async throws -> Void
    ) async throws(StoreError) -> ObjectInfo {
        let path = try path(key)
        try makeParents(of: path, key: key)
        var upload: LargeUpload
        if let resuming, resuming.key == key, resuming.totalSize == source.length, access(resuming.uploadID, F_OK) == 0 {
            upload = resuming
        } else {
            upload = LargeUpload(uploadID: "\(path)\(Self.partialMarker)\(UInt64.random(in: 0...UInt64.max))",
                                 key: key, partSize: partSize, totalSize: source.length)
            do {
                try await checkpoint(upload)
            } catch {
                throw StoreError(.io, store: url.description, key: key, message: "cannot record the upload's state: \(error)")
            }
        }
        let partial = upload.uploadID
        let totalSize = upload.totalSize
        let done = Set(upload.parts.map(\.number))
        for number in 1...upload.partCount where !done.contains(number) {
            let range = upload.range(ofPart: number)
            let part = try await Blocking.run { () throws(StoreError) -> LargeUpload.Part in
                let fd = open(partial, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw error(key, "cannot open \(partial)") }
                defer { close(fd) }
                let crc = try write(source.slice(offset: range.lowerBound, length: Int64(range.count)), to: fd, at: range.lowerBound, key: key, progress: options.progress)
                guard fdatasync(fd) == 0 else { throw error(key, "cannot fsync \(partial)") }
                return LargeUpload.Part(number: number, size: Int64(range.count), tag: "", crc32c: crc)
            }
            upload.parts.append(part)
            upload.parts.sort { $0.number < $1.number }
            do {
                try await checkpoint(upload)
            } catch {
                throw StoreError(.io, store: url.description, key: key, message: "cannot record the upload's state: \(error)")
            }
        }
        let crc = upload.parts.reduce(CRC32C().value) { CRC32C.combine($0, $1.crc32c, lengthOfSecond: Int($1.size)) }
        if let expected = options.crc32c, expected != crc {
            throw StoreError(.integrity, store: url.description, key: key, message: "the parts' CRC32C is \(crc32cHex(crc)), expected \(crc32cHex(expected))")
        }
        return try await Blocking.run { () throws(StoreError) -> ObjectInfo in
            let fd = open(partial, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw error(key, "cannot open \(partial)") }
            defer { close(fd) }
            guard ftruncate(fd, off_t(totalSize)) == 0 else { throw error(key, "cannot size \(partial)") }
            fsync(fd)
            if options.createOnly {
                guard link(partial, path) == 0 else {
                    if errno == EEXIST { throw StoreError(.alreadyExists, store: url.description, key: key, message: "an object already exists (create-only put)") }
                    throw error(key, "cannot link \(path)")
                }
                unlink(partial)
            } else {
                guard rename(partial, path) == 0 else { throw error(key, "cannot rename into \(path)") }
            }
            syncDirectory(of: path)
            var info = stat()
            guard lstat(path, &info) == 0 else { throw error(key, "cannot stat \(path)") }
            return objectInfo(key: key, path: path, info: info)
        }
    }

    public func abortLarge(_ upload: LargeUpload) async throws(StoreError) {
        // Only ever a partial file of this store: the id was made by putLarge above.
        guard upload.uploadID.hasPrefix(root + "/"), upload.uploadID.contains(Self.partialMarker) else {
            throw StoreError(.rejected, store: url.description, key: upload.key, message: "not an upload of this store")
        }
        guard unlink(upload.uploadID) == 0 || errno == ENOENT else { throw error(upload.key, "cannot remove \(upload.uploadID)") }
    }
}
