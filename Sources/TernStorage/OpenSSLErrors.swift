internal import COpenSSL

/// OpenSSL's queued errors for this thread as text, emptying the queue. They name the failing
/// step (certificate verification, a PEM parse), never key material.
enum OpenSSLErrors {
    static func drain(whenNone: String = "no OpenSSL error recorded") -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            messages.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? whenNone : messages.joined(separator: "; ")
    }
}
