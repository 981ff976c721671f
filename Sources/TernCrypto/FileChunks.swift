#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams a file through a callback in 1 MiB reads with one reused buffer.
enum FileChunks {
    /// Bytes per `read(2)`.
    static let chunkSize = 1 << 20

    /// Calls `body` with each chunk of the file at `path`, in order.
    ///
    /// - Throws: ``CryptoError`` `.fileIO` naming the path and the system's reason.
    static func forEach(path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws(CryptoError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CryptoError(.fileIO, "cannot open '\(path)' for reading: \(systemError(errno))")
        }
        defer { _ = close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, chunkSize)
            if n > 0 {
                body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            } else if n == 0 {
                return
            } else {
                let code = errno
                if code == EINTR { continue }
                throw CryptoError(.fileIO, "cannot read '\(path)': \(systemError(code))")
            }
        }
    }

    private static func systemError(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}
