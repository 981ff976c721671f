import Foundation
import Glibc
import TernCrypto

extension BlobSource {
    /// The CRC32C of these bytes; a file range is read on a thread of its own.
    /// Errors name `store` and `key`.
    func crc32c(store: String, key: String) async throws(StoreError) -> UInt32 {
        if case .bytes(let bytes) = self { return CRC32C.checksum(bytes) }
        return try await Blocking.run { () throws(StoreError) -> UInt32 in
            var crc = CRC32C()
            try readPieces(store: store, key: key) { crc.update($0) }
            return crc.value
        }
    }

    /// Hands every byte to `consume` in order, in pieces of at most 4 MiB; blocks while reading a
    /// file range (call it from a thread of its own). Errors name `store` and `key`.
    func readPieces(store: String, key: String, _ consume: (UnsafeRawBufferPointer) -> Void) throws(StoreError) {
        switch self {
        case .bytes(let bytes):
            bytes.withUnsafeBytes { consume($0) }
        case .file(let path, let offset, let length):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw StoreError(.io, store: store, key: key, message: "cannot open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var done: Int64 = 0
            while done < length {
                let count = pread(fd, buffer.baseAddress, Int(min(Int64(buffer.count), length - done)), off_t(offset + done))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StoreError(.io, store: store, key: key, message: "cannot read \(path): \(String(cString: strerror(errno)))")
                }
                if count == 0 {
                    throw StoreError(.io, store: store, key: key, message: "\(path) ended \(length - done) bytes early (it changed while being read)")
                }
                consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                done += Int64(count)
            }
        }
    }
}

/// A CRC32C as 8 lowercase hex digits, the way manifests and messages write it.
func crc32cHex(_ crc: UInt32) -> String {
    let digits = String(crc, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
