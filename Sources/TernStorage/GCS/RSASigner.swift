import Foundation
internal import COpenSSL

/// An RSA private key read from PEM, signing with RS256 (RSASSA-PKCS1-v1_5 over SHA-256) through
/// OpenSSL. PKCS#1 v1.5 signatures are deterministic, which is what lets the tests compare Tern's
/// JWTs with vectors made by an independent implementation byte for byte.
///
/// The key never leaves OpenSSL's memory once parsed; this type has no way to print it.
final class RSASigner: @unchecked Sendable {
    // Immutable after init; OpenSSL allows concurrent signing with one key and separate contexts.
    private let key: OpaquePointer

    /// Parses a PEM private key (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`).
    /// - Parameters:
    ///   - source: where the key came from, for errors (a file path, never the key).
    ///   - store: the store's URL, for errors.
    init(pem: String, source: String, store: String) throws(StoreError) {
        let bytes = Array(pem.utf8)
        let parsed: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            // A password callback that supplies none: an encrypted key fails here instead of
            // OpenSSL prompting on the terminal.
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let parsed else {
            let reason = OpenSSLErrors.drain()
            throw StoreError(.credentials, store: store, message: "\(source): private_key is not a readable, unencrypted PEM private key (\(reason))")
        }
        guard EVP_PKEY_is_a(parsed, "RSA") == 1 else {
            EVP_PKEY_free(parsed)
            throw StoreError(.credentials, store: store, message: "\(source): private_key is not an RSA key (service-account keys are RSA)")
        }
        key = parsed
    }

    deinit {
        EVP_PKEY_free(key)
    }

    /// The RS256 signature of `message`.
    func sign(_ message: [UInt8], store: String) throws(StoreError) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else {
            throw StoreError(.credentials, store: store, message: "cannot sign the token request: \(OpenSSLErrors.drain())")
        }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            throw StoreError(.credentials, store: store, message: "cannot sign the token request: \(OpenSSLErrors.drain())")
        }
        var length = 0
        let signed = message.withUnsafeBufferPointer { input -> [UInt8]? in
            guard EVP_DigestSign(context, nil, &length, input.baseAddress, input.count) == 1 else { return nil }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_DigestSign(context, &signature, &length, input.baseAddress, input.count) == 1 else { return nil }
            return Array(signature.prefix(length))
        }
        guard let signed else {
            throw StoreError(.credentials, store: store, message: "cannot sign the token request: \(OpenSSLErrors.drain())")
        }
        return signed
    }
}
