import Foundation
import Glibc
import TernStorage
internal import TernCrypto

/// Receives a file's bytes from a store, hashes every 64 MiB chunk as it arrives and compares it
/// with the manifest's digest, optionally writing the bytes to a local file. A chunk that does not
/// match is remembered with its byte range; the caller decides whether that stops the transfer.
final class ChunkCheckingSink: BlobSink, @unchecked Sendable {
    private let lock = NSLock()
    private let expected: [SHA256Digest]
    private let chunkSize: Int64
    private let size: Int64
    private let output: Int32?
    // Optional so finishing a chunk can consume the noncopyable hasher and put a fresh one back.
    private var hasher: SHA256? = SHA256()
    private var position: Int64 = 0
    private var chunkIndex = 0
    private var chunkFill: Int64 = 0
    private(set) var badRanges: [Range<Int64>] = []
    private let progress: TransferProgress?

    /// - Parameter output: a file descriptor the bytes are also written to (at their offsets), or nil.
    init(expected: [SHA256Digest], chunkSize: Int64, size: Int64, output: Int32?, progress: TransferProgress?) {
        self.expected = expected
        self.chunkSize = chunkSize
        self.size = size
        self.output = output
        self.progress = progress
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try lock.withLock {
            var offset = 0
            while offset < bytes.count {
                guard position < size else {
                    throw CheckpointError("the store holds more bytes than the manifest's \(size)")
                }
                let take = Int(min(Int64(bytes.count - offset), chunkSize - chunkFill, size - position))
                let piece = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)])
                hasher!.update(piece)
                if let output {
                    var written = 0
                    while written < take {
                        let result = pwrite(output, piece.baseAddress! + written, take - written, off_t(position) + off_t(written))
                        if result < 0 {
                            if errno == EINTR { continue }
                            throw CheckpointError("cannot write the restored file: \(String(cString: strerror(errno)))")
                        }
                        written += result
                    }
                }
                position += Int64(take)
                chunkFill += Int64(take)
                offset += take
                if chunkFill == chunkSize || position == size { finishChunk() }
            }
            progress?.add(Int64(bytes.count))
        }
    }

    private func finishChunk() {
        let digest = hasher.take()!.finalize()
        hasher = SHA256()
        let start = Int64(chunkIndex) * chunkSize
        if chunkIndex >= expected.count || digest != expected[chunkIndex] {
            badRanges.append(start..<(start + chunkFill))
        }
        chunkIndex += 1
        chunkFill = 0
    }

    /// Every byte arrived and every chunk matched. (An empty file has no chunks.)
    func finish() -> (complete: Bool, badRanges: [Range<Int64>]) {
        lock.withLock { (position == size, badRanges) }
    }
}
