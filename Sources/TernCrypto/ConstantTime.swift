public import Foundation
internal import COpenSSL

/// Whether two byte sequences are equal, taking time that depends only on their lengths
/// (OpenSSL `CRYPTO_memcmp`). Use it to compare MACs, tokens and other secrets.
///
/// Sequences of different lengths are unequal; the length itself is not treated as secret.
public func constantTimeEquals(_ lhs: some ContiguousBytes, _ rhs: some ContiguousBytes) -> Bool {
    lhs.withUnsafeBytes { a in
        rhs.withUnsafeBytes { b in
            guard a.count == b.count else { return false }
            guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
            return CRYPTO_memcmp(pa, pb, a.count) == 0
        }
    }
}
