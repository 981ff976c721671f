internal import COpenSSL

/// OpenSSL objects fetched once per process and shared (read-only) by every hasher.
///
/// Fetched `EVP_MD` / `EVP_MAC` objects are immutable and safe to use from many threads;
/// Swift initializes these `static let`s exactly once, on first use.
enum OpenSSL {
    /// The SHA-256 message digest (`EVP_MD_fetch(NULL, "SHA256", NULL)`).
    nonisolated(unsafe) static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("TernCrypto: OpenSSL could not provide SHA-256 (is the default provider available?): \(drainErrors())")
        }
        return md
    }()

    /// The HMAC MAC algorithm (`EVP_MAC_fetch(NULL, "HMAC", NULL)`).
    nonisolated(unsafe) static let hmac: OpaquePointer = {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            fatalError("TernCrypto: OpenSSL could not provide HMAC (is the default provider available?): \(drainErrors())")
        }
        return mac
    }()

    /// `{ "digest": "SHA256" }, END`: the parameters that make an HMAC context HMAC-SHA256.
    /// Allocated once and never freed; OpenSSL only reads them.
    nonisolated(unsafe) static let hmacSHA256Params: UnsafePointer<OSSL_PARAM> = {
        let params = UnsafeMutablePointer<OSSL_PARAM>.allocate(capacity: 2)
        params[0] = OSSL_PARAM_construct_utf8_string(permanentCString("digest"), permanentCString("SHA256"), 0)
        params[1] = OSSL_PARAM_construct_end()
        return UnsafePointer(params)
    }()

    /// A NUL-terminated copy of `string` that lives for the rest of the process.
    private static func permanentCString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let chars = Array(string.utf8CString)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: chars.count)
        pointer.initialize(from: chars, count: chars.count)
        return pointer
    }

    /// Empties this thread's OpenSSL error queue and returns its entries as text.
    static func drainErrors() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            buffer.withUnsafeMutableBufferPointer { ERR_error_string_n(code, $0.baseAddress, $0.count) }
            let end = buffer.firstIndex(of: 0) ?? buffer.count
            messages.append(String(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? "no OpenSSL error recorded" : messages.joined(separator: "; ")
    }

    /// Stops the process if an OpenSSL call that cannot fail on valid input reported failure.
    @inline(__always)
    static func check(_ status: Int32, _ operation: @autoclosure () -> String) {
        if status != 1 {
            fatalError("TernCrypto: \(operation()) failed: \(drainErrors())")
        }
    }
}

/// Runs `body` with a non-null base address even for an empty buffer (OpenSSL rejects some NULL inputs).
@inline(__always)
func withNonNullBase<R>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    if let base = bytes.baseAddress {
        return body(base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
    var zero: UInt8 = 0
    return withUnsafePointer(to: &zero) { body($0, 0) }
}
