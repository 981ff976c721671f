import Foundation
import Glibc
internal import COpenSSL

/// One TCP connection, optionally wrapped in TLS, with blocking reads and writes bounded by socket
/// timeouts. Used by one request at a time; the client pools idle ones.
final class HTTPConnection {
    let key: String
    private let fd: Int32
    private var ssl: OpaquePointer?
    private var buffer: [UInt8]
    private var bufferStart = 0
    private var bufferEnd = 0
    /// Set when the connection came from the pool: an early EOF then means the server closed it idle.
    var reused = false

    private init(key: String, fd: Int32, ssl: OpaquePointer?) {
        self.key = key
        self.fd = fd
        self.ssl = ssl
        buffer = [UInt8](repeating: 0, count: 64 << 10)
    }

    deinit {
        if let ssl {
            SSL_shutdown(ssl)
            SSL_free(ssl)
        }
        close(fd)
    }

    static func open(_ url: HTTPURL, tls: TLSContext?, connectTimeout: Duration, ioTimeout: Duration) throws(HTTPError) -> HTTPConnection {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let lookup = getaddrinfo(url.host, String(url.port), &hints, &list)
        guard lookup == 0, let first = list else {
            throw HTTPError(.connect, "cannot resolve \(url.host): \(String(cString: gai_strerror(lookup)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
            if fd < 0 { continue }
            if connectWithTimeout(fd, address.pointee.ai_addr, address.pointee.ai_addrlen, connectTimeout) {
                configure(fd, ioTimeout: ioTimeout)
                let key = Self.poolKey(url)
                guard let tls, url.secure else { return HTTPConnection(key: key, fd: fd, ssl: nil) }
                return try HTTPConnection(key: key, fd: fd, ssl: tls.handshake(fd: fd, host: url.host))
            }
            lastError = String(cString: strerror(errno))
            close(fd)
        }
        throw HTTPError(.connect, "cannot connect to \(url.hostHeader): \(lastError)")
    }

    static func poolKey(_ url: HTTPURL) -> String {
        "\(url.secure ? "https" : "http")://\(url.host):\(url.port)"
    }

    private static func connectWithTimeout(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: socklen_t, _ timeout: Duration) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if connect(fd, address, length) == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&poller, 1, milliseconds)
        guard ready == 1 else {
            errno = ready == 0 ? ETIMEDOUT : errno
            return false
        }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        if error != 0 { errno = error }
        return error == 0
    }

    private static func configure(_ fd: Int32, ioTimeout: Duration) {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: Int(ioTimeout.components.seconds), tv_usec: Int(ioTimeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // No SIGPIPE when the server closes while we write; the write returns EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
    }

    // MARK: Writing

    func write(_ bytes: UnsafeRawBufferPointer) throws(HTTPError) {
        var offset = 0
        while offset < bytes.count {
            let pointer = bytes.baseAddress! + offset
            let remaining = bytes.count - offset
            let written: Int
            if let ssl {
                let result = SSL_write(ssl, pointer, Int32(min(remaining, Int(Int32.max))))
                if result <= 0 { throw tlsIOError(ssl, result, "write") }
                written = Int(result)
            } else {
                written = Glibc.send(fd, pointer, remaining, Int32(MSG_NOSIGNAL))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw socketError("write")
                }
            }
            offset += written
        }
    }

    func write(_ text: String) throws(HTTPError) {
        var copy = text
        try httpTyped { try copy.withUTF8 { utf8 in try write(UnsafeRawBufferPointer(utf8)) } }
    }

    /// Sends `length` bytes of the file at `offset`: sendfile(2) on plain connections (no copy
    /// through user space), read-and-write through TLS.
    func sendFile(path: String, offset: Int64, length: Int64, progress: TransferProgress?) throws(HTTPError) {
        let file = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw HTTPError(.localFile, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(file) }
        var position = off_t(offset)
        var remaining = length
        if ssl == nil {
            while remaining > 0 {
                let sent = sendfile(fd, file, &position, Int(min(remaining, 8 << 20)))
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw socketError("sendfile")
                }
                if sent == 0 { throw HTTPError(.localFile, "\(path) ended \(remaining) bytes early (it changed while being sent)") }
                remaining -= Int64(sent)
                progress?.add(Int64(sent))
            }
            return
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        while remaining > 0 {
            let count = pread(file, chunk.baseAddress, Int(min(remaining, Int64(chunk.count))), position)
            if count < 0 {
                if errno == EINTR { continue }
                throw HTTPError(.localFile, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { throw HTTPError(.localFile, "\(path) ended \(remaining) bytes early (it changed while being sent)") }
            try write(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
            position += off_t(count)
            remaining -= Int64(count)
            progress?.add(Int64(count))
        }
    }

    // MARK: Reading

    /// Fills the buffer; false at end of stream.
    private func fill() throws(HTTPError) -> Bool {
        if bufferStart == bufferEnd {
            bufferStart = 0
            bufferEnd = 0
        } else if bufferEnd == buffer.count {
            buffer.replaceSubrange(0..<(bufferEnd - bufferStart), with: buffer[bufferStart..<bufferEnd])
            bufferEnd -= bufferStart
            bufferStart = 0
        }
        let capacity = buffer.count - bufferEnd
        let count: Int = try httpTyped { try buffer.withUnsafeMutableBytes { (raw) throws -> Int in
            let pointer = raw.baseAddress! + bufferEnd
            while true {
                if let ssl {
                    let result = SSL_read(ssl, pointer, Int32(capacity))
                    if result > 0 { return Int(result) }
                    let code = SSL_get_error(ssl, result)
                    if code == SSL_ERROR_ZERO_RETURN { return 0 }
                    if code == SSL_ERROR_SYSCALL && errno == 0 { return 0 }
                    throw tlsIOError(ssl, result, "read")
                }
                let result = recv(fd, pointer, capacity, 0)
                if result >= 0 { return result }
                if errno == EINTR { continue }
                throw socketError("read")
            }
        } }
        bufferEnd += count
        return count > 0
    }

    /// One line without its CRLF; nil at end of stream before any byte.
    func readLine(limit: Int = 64 << 10) throws(HTTPError) -> String? {
        var scanned = bufferStart
        while true {
            while scanned < bufferEnd {
                if buffer[scanned] == UInt8(ascii: "\n") {
                    var end = scanned
                    if end > bufferStart, buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                    let line = String(decoding: buffer[bufferStart..<end], as: UTF8.self)
                    bufferStart = scanned + 1
                    return line
                }
                scanned += 1
            }
            if bufferEnd - bufferStart > limit { throw HTTPError(.malformed, "a header line longer than \(limit) bytes") }
            let offset = scanned - bufferStart
            guard try fill() else {
                if bufferStart == bufferEnd { return nil }
                throw HTTPError(.reset, "the connection closed in the middle of a line")
            }
            scanned = bufferStart + offset
        }
    }

    /// Hands exactly `count` bytes to `consume`, in pieces.
    func readExactly(_ count: Int64, _ consume: (UnsafeRawBufferPointer) throws(HTTPError) -> Void) throws(HTTPError) {
        var remaining = count
        while remaining > 0 {
            if bufferStart == bufferEnd {
                guard try fill() else { throw HTTPError(.reset, "the connection closed with \(remaining) body bytes still to come") }
            }
            let take = Int(min(Int64(bufferEnd - bufferStart), remaining))
            try httpTyped { try buffer.withUnsafeBytes { raw in
                try consume(UnsafeRawBufferPointer(rebasing: raw[bufferStart..<(bufferStart + take)]))
            } }
            bufferStart += take
            remaining -= Int64(take)
        }
    }

    /// Hands every byte until the peer closes to `consume`.
    func readToEnd(_ consume: (UnsafeRawBufferPointer) throws(HTTPError) -> Void) throws(HTTPError) {
        while true {
            if bufferStart == bufferEnd {
                guard try fill() else { return }
            }
            try httpTyped { try buffer.withUnsafeBytes { raw in
                try consume(UnsafeRawBufferPointer(rebasing: raw[bufferStart..<bufferEnd]))
            } }
            bufferStart = bufferEnd
        }
    }

    // MARK: Errors

    private func socketError(_ operation: String) -> HTTPError {
        let code = errno
        if code == EAGAIN || code == EWOULDBLOCK { return HTTPError(.timeout, "\(operation) timed out on \(key)") }
        return HTTPError(.reset, "\(operation) on \(key): \(String(cString: strerror(code)))")
    }

    private func tlsIOError(_ ssl: OpaquePointer, _ result: Int32, _ operation: String) -> HTTPError {
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_SYSCALL {
            return socketError("TLS \(operation)")
        }
        return HTTPError(.reset, "TLS \(operation) on \(key) failed: \(OpenSSLErrors.drain(whenNone: "unknown TLS error"))")
    }
}

/// The OpenSSL client context: peer verification on, always, against the system's trust store or
/// a CA bundle (`AWS_CA_BUNDLE`, `SSL_CERT_FILE` or the configuration). There is deliberately no
/// switch to turn verification off; tests trust their own CA through a bundle instead.
final class TLSContext: @unchecked Sendable {
    private let context: OpaquePointer

    init(caBundle: String?) throws(HTTPError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw HTTPError(.tls, "cannot create a TLS context: \(OpenSSLErrors.drain(whenNone: "unknown TLS error"))")
        }
        self.context = context
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        tern_ssl_ctx_require_tls12(context)
        if let caBundle {
            guard SSL_CTX_load_verify_locations(context, caBundle, nil) == 1 else {
                throw HTTPError(.tls, "cannot load the CA bundle \(caBundle): \(OpenSSLErrors.drain(whenNone: "unknown TLS error"))")
            }
        } else {
            SSL_CTX_set_default_verify_paths(context)
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    func handshake(fd: Int32, host: String) throws(HTTPError) -> OpaquePointer {
        guard let ssl = SSL_new(context) else { throw HTTPError(.tls, "cannot create a TLS session: \(OpenSSLErrors.drain(whenNone: "unknown TLS error"))") }
        SSL_set_fd(ssl, fd)
        // SNI, and the name the certificate must carry (an IP address is checked as one).
        if inet_addr(host) == INADDR_NONE && !host.contains(":") {
            tern_ssl_set_server_name(ssl, host)
            SSL_set1_host(ssl, host)
        } else {
            let parameters = SSL_get0_param(ssl)
            X509_VERIFY_PARAM_set1_ip_asc(parameters, host)
        }
        guard SSL_connect(ssl) == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK
                ? "certificate verification failed: \(String(cString: X509_verify_cert_error_string(verify)))"
                : OpenSSLErrors.drain(whenNone: "unknown TLS error")
            SSL_free(ssl)
            throw HTTPError(.tls, "TLS handshake with \(host) failed: \(reason)")
        }
        return ssl
    }
}

/// Runs a closure through an untyped-`rethrows` API (the standard library's buffer accessors) and
/// gives back the ``HTTPError`` it threw.
func httpTyped<T>(_ body: () throws -> T) throws(HTTPError) -> T {
    do {
        return try body()
    } catch let error as HTTPError {
        throw error
    } catch {
        throw HTTPError(.malformed, "\(error)")
    }
}
