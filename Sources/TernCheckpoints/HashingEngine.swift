internal import Foundation
internal import Glibc
internal import Synchronization
public import TernCrypto

/// The digests of one file: its chunk digests, whole-file CRC32C and root.
public struct FileDigest: Sendable, Hashable {
    public var path: String
    public var size: Int64
    public var chunkDigests: [SHA256Digest]
    public var crc32c: UInt32
    public var root: SHA256Digest
}

/// Progress of a hashing run, reported from worker threads.
public struct HashingProgress: Sendable {
    public var bytesDone: Int64
    public var bytesTotal: Int64
}

/// Reads every file once and computes, in the same pass, the SHA-256 of each chunk and the
/// whole-file CRC32C.
///
/// Work is split into chunks (64 MiB by default) across all files, and a fixed set of worker threads
/// takes chunks in order, so chunks of one large file and of different files are hashed in
/// parallel. Each worker owns one small read buffer (1 MiB): the data is hashed while it is still in
/// the CPU cache, and memory stays at `threads × readSize` however large the checkpoint is. SHA-256
/// and CRC32C come from one ``SHA256WithCRC32C`` pass, which on CPUs with SHA-NI runs the CRC
/// instructions under the SHA-256 rounds instead of reading the buffer a second time. Per-chunk
/// CRCs are joined with ``CRC32C/combine(_:_:lengthOfSecond:)`` into the whole-file value.
///
/// Workers are plain threads, not Swift tasks: `pread` blocks, and the cooperative pool must stay free.
public struct HashingEngine: Sendable {
    public var chunkSize: Int64
    public var threads: Int
    public var readSize: Int

    public init(chunkSize: Int64 = CheckpointManifest.defaultChunkSize,
                threads: Int? = nil, readSize: Int = 1 << 20) {
        precondition(chunkSize > 0 && (threads ?? 1) > 0 && readSize > 0)
        self.chunkSize = chunkSize
        // One worker per core: hashing is CPU-bound once the data is in the page cache.
        self.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        self.readSize = readSize
    }

    /// One chunk of work: a byte range of one file.
    struct Task {
        var file: Int
        var chunk: Int
        var offset: Int64
        var length: Int64
    }

    /// What a worker found for one chunk.
    struct ChunkResult {
        var digest: SHA256Digest
        var crc: UInt32
    }

    /// Hashes `files` (relative to `root`) off the cooperative pool, in parallel.
    public func hash(files: [ScannedFile], root: String,
                     progress: (@Sendable (HashingProgress) -> Void)? = nil) async throws(CheckpointError) -> [FileDigest] {
        let result: Result<[FileDigest], CheckpointError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(CheckpointError) in try hashBlocking(files: files, root: root, progress: progress) })
            }
            thread.name = "tern-hash"
            thread.start()
        }
        return try result.get()
    }

    /// The same, blocking the calling thread (tests, benchmarks, threads of our own).
    public func hashBlocking(files: [ScannedFile], root: String,
                             progress: (@Sendable (HashingProgress) -> Void)? = nil) throws(CheckpointError) -> [FileDigest] {
        // Files are opened by the workers as they reach them, one descriptor per worker at a time:
        // opening every file up front would need as many descriptors as the checkpoint has files
        // (10,000 shards exceed the usual limit of 1,024).
        var tasks: [Task] = []
        var chunkCounts: [Int] = []
        for (index, file) in files.enumerated() {
            let count = Int((file.size + chunkSize - 1) / chunkSize)
            chunkCounts.append(count)
            for chunk in 0..<count {
                let offset = Int64(chunk) * chunkSize
                tasks.append(Task(file: index, chunk: chunk, offset: offset, length: min(chunkSize, file.size - offset)))
            }
        }
        let total = files.reduce(Int64(0)) { $0 + $1.size }
        let state = SharedState(taskCount: tasks.count)
        let workerCount = max(1, min(threads, tasks.count))
        let readSize = self.readSize

        let work: @Sendable () -> Void = { [tasks] in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 4096)
            var current: (file: Int, descriptor: Int32)?
            defer {
                if let current { close(current.descriptor) }
                buffer.deallocate()
            }
            while let index = state.nextTask() {
                let task = tasks[index]
                let file = files[task.file]
                do {
                    if current?.file != task.file {
                        if let current { close(current.descriptor) }
                        current = nil
                        current = (task.file, try Self.open(file, root: root))
                    }
                    let descriptor = current!.descriptor
                    let result = try Self.hashChunk(task, descriptor: descriptor, buffer: buffer, path: file.path, root: root)
                    // Checked after every chunk, so the check after a file's last chunk covers all of it.
                    try Self.checkUnchanged(file, descriptor: descriptor, root: root)
                    state.store(result, at: index)
                    let done = state.addProgress(task.length)
                    progress?(HashingProgress(bytesDone: done, bytesTotal: total))
                } catch {
                    state.fail(error)
                }
            }
        }
        if workerCount == 1 {
            work()
        } else {
            let group = DispatchGroup()
            for number in 0..<workerCount {
                group.enter()
                let thread = Thread {
                    work()
                    group.leave()
                }
                thread.name = "tern-hash-\(number)"
                thread.stackSize = 256 << 10
                thread.start()
            }
            group.wait()
        }
        if let error = state.firstError { throw error }

        // Assemble per file. Empty files have no chunk a worker read: check them here.
        let results = state.results
        var digests: [FileDigest] = []
        var next = 0
        for (index, file) in files.enumerated() {
            if file.size == 0 {
                let descriptor = try Self.open(file, root: root)
                defer { close(descriptor) }
                try Self.checkUnchanged(file, descriptor: descriptor, root: root)
            }
            var chunkDigests: [SHA256Digest] = []
            var crc = CRC32C().value
            for chunk in 0..<chunkCounts[index] {
                guard let result = results[next] else { throw CheckpointError("internal error: chunk \(chunk) of \(file.path) was not hashed") }
                chunkDigests.append(result.digest)
                let length = tasks[next].length
                crc = chunk == 0 ? result.crc : CRC32C.combine(crc, result.crc, lengthOfSecond: Int(length))
                next += 1
            }
            let root = FileRoot.root(size: file.size, chunkSize: chunkSize, chunkDigests: chunkDigests)
            digests.append(FileDigest(path: file.path, size: file.size, chunkDigests: chunkDigests, crc32c: crc, root: root))
        }
        return digests
    }

    /// Opens a scanned file for reading, never following a link.
    private static func open(_ file: ScannedFile, root: String) throws(CheckpointError) -> Int32 {
        let descriptor = Glibc.open(root + "/" + file.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            throw CheckpointError("\(root)/\(file.path): cannot be opened: \(String(cString: strerror(errno)))")
        }
        posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        return descriptor
    }

    /// Throws when the open file is no longer the regular file of the size and modification time the scan saw.
    private static func checkUnchanged(_ file: ScannedFile, descriptor: Int32, root: String) throws(CheckpointError) {
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int64(info.st_size) == file.size,
              Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) == file.modified else {
            throw CheckpointError("\(root)/\(file.path) changed while it was being hashed; seal only a finished checkpoint")
        }
    }

    private static func hashChunk(_ task: Task, descriptor: Int32, buffer: UnsafeMutableRawBufferPointer,
                                  path: String, root: String) throws(CheckpointError) -> ChunkResult {
        var hasher = SHA256WithCRC32C()
        var offset = task.offset
        let end = task.offset + task.length
        while offset < end {
            let wanted = Int(min(Int64(buffer.count), end - offset))
            let count = pread(descriptor, buffer.baseAddress, wanted, off_t(offset))
            if count < 0 {
                if errno == EINTR { continue }
                throw CheckpointError("\(root)/\(path): read failed at byte \(offset): \(String(cString: strerror(errno)))")
            }
            if count == 0 {
                throw CheckpointError("\(root)/\(path) became shorter while it was being hashed (ended at byte \(offset)); seal only a finished checkpoint")
            }
            let slice = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            hasher.update(slice)
            offset += Int64(count)
        }
        let (digest, crc) = hasher.finalize()
        return ChunkResult(digest: digest, crc: crc)
    }

    /// The task cursor, results and first error, shared by the workers.
    final class SharedState: Sendable {
        private let cursor = Atomic<Int>(0)
        private let done = Atomic<Int64>(0)
        private let taskCount: Int
        private let storage: Mutex<(results: [ChunkResult?], error: CheckpointError?)>

        init(taskCount: Int) {
            self.taskCount = taskCount
            storage = Mutex((Array(repeating: nil, count: taskCount), nil))
        }

        /// The next chunk to hash, or nil when all are taken or a worker failed.
        func nextTask() -> Int? {
            if storage.withLock({ $0.error != nil }) { return nil }
            let index = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            return index < taskCount ? index : nil
        }

        func store(_ result: ChunkResult, at index: Int) { storage.withLock { $0.results[index] = result } }
        func fail(_ error: any Error) {
            storage.withLock { state in
                if state.error == nil { state.error = (error as? CheckpointError) ?? CheckpointError("\(error)") }
            }
        }
        func addProgress(_ bytes: Int64) -> Int64 { done.wrappingAdd(bytes, ordering: .relaxed).newValue }
        var results: [ChunkResult?] { storage.withLock { $0.results } }
        var firstError: CheckpointError? { storage.withLock { $0.error } }
    }
}
