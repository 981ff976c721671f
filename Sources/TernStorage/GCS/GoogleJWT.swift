import TernCrypto

/// The signed JWT a service account exchanges for an access token (OAuth 2.0 JWT bearer grant,
/// RFC 7523), as Google documents it for server-to-server applications.
///
/// Header `{"alg":"RS256","kid":…,"typ":"JWT"}`, claims `{"iss":…,"scope":…,"aud":…,"exp":…,"iat":…}`,
/// both compact JSON in that order, base64url without padding, signed with RS256. The order and
/// the escaping match PyJWT's output, so the tests compare tokens with its vectors byte for byte.
public enum GoogleJWT {
    /// Read and write access to objects, and nothing about buckets' IAM policies.
    public static let readWriteScope = "https://www.googleapis.com/auth/devstorage.read_write"
    /// How long an assertion is valid; Google accepts at most an hour.
    public static let lifetime: Int64 = 3600

    /// The assertion for `key`, issued at `issuedAt` (seconds since 1970) and expiring an hour later.
    /// - Parameter audience: the token endpoint; the key's `token_uri` when nil.
    public static func assertion(
        key: ServiceAccountKey, scope: String = readWriteScope, audience: String? = nil, issuedAt: Int64, store: String = "gs"
    ) throws(StoreError) -> String {
        var header = "{\"alg\":\"RS256\""
        if !key.privateKeyID.isEmpty { header += ",\"kid\":\(GoogleJSON.quote(key.privateKeyID))" }
        header += ",\"typ\":\"JWT\"}"
        let claims = "{\"iss\":\(GoogleJSON.quote(key.clientEmail)),\"scope\":\(GoogleJSON.quote(scope))"
            + ",\"aud\":\(GoogleJSON.quote(audience ?? key.tokenURI)),\"exp\":\(issuedAt + lifetime),\"iat\":\(issuedAt)}"
        let signingInput = Base64.encodeURLSafe(Array(header.utf8)) + "." + Base64.encodeURLSafe(Array(claims.utf8))
        let signature = try key.signer.sign(Array(signingInput.utf8), store: store)
        return signingInput + "." + Base64.encodeURLSafe(signature)
    }
}

/// JSON text for the few documents Tern writes by hand (JWT parts, upload metadata), escaped the
/// way Python's `json.dumps` does by default: `"`, `\` and control characters escaped, every
/// non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF), `/` left alone. Foundation's
/// encoder writes `\/`, which would break the byte-for-byte comparison with the vectors.
enum GoogleJSON {
    static func quote(_ text: String) -> String {
        var result = "\""
        let hex = Array("0123456789abcdef")
        func escape(_ unit: UInt16) {
            result += "\\u"
            for shift in [12, 8, 4, 0] { result.append(hex[Int((unit >> UInt16(shift)) & 0xF)]) }
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{08}": result += "\\b"
            case "\u{0C}": result += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value > 0x7E {
                    for unit in String(scalar).utf16 { escape(unit) }
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// `{"k":v,…}` from already-encoded values, in the order given.
    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { "\(quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}
