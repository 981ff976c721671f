import Foundation

/// The parts of a Google service-account key file (the JSON the IAM console downloads) that Tern
/// uses to get access tokens. The private key is parsed into OpenSSL at once and kept nowhere
/// else; `description` shows only the account and the key's id.
public struct ServiceAccountKey: Sendable, CustomStringConvertible {
    /// The account the token is issued to (`client_email`), the JWT's `iss`.
    public let clientEmail: String
    /// `private_key_id`, the JWT header's `kid`.
    public let privateKeyID: String
    /// Where the signed JWT is exchanged for an access token (`token_uri`), also the JWT's `aud`.
    public let tokenURI: String
    let signer: RSASigner

    /// Google's token endpoint, for key files that do not name one.
    public static let defaultTokenURI = "https://oauth2.googleapis.com/token"

    /// Reads a key file.
    /// - Parameter store: the store's URL, for errors.
    /// - Throws: ``StoreError/Kind/credentials`` naming the file and what is wrong with it (never its content).
    public init(contentsOfFile path: String, store: String = "gs") throws(StoreError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StoreError(.credentials, store: store, message: "cannot read the service-account key file \(path): \(Self.reason(error))")
        }
        try self.init(json: Array(data), source: path, store: store)
    }

    /// Parses a key file's JSON.
    /// - Parameter source: where it came from (a path), for errors.
    public init(json: [UInt8], source: String, store: String = "gs") throws(StoreError) {
        func invalid(_ why: String) -> StoreError {
            StoreError(.credentials, store: store, message: "\(source): \(why)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else {
            throw invalid("not a JSON object; expected a service-account key file")
        }
        let type = object["type"] as? String ?? ""
        guard type == "service_account" else {
            let found = type.isEmpty ? "no \"type\"" : "type \"\(type)\""
            throw invalid("\(found); Tern reads service-account key files (\"type\": \"service_account\"); on a Google Cloud VM, leave the key file out to use the metadata server")
        }
        guard let email = object["client_email"] as? String, !email.isEmpty else { throw invalid("client_email is missing") }
        guard let pem = object["private_key"] as? String, !pem.isEmpty else { throw invalid("private_key is missing") }
        let tokenURI = object["token_uri"] as? String ?? Self.defaultTokenURI
        guard HTTPURL(string: tokenURI) != nil else { throw invalid("token_uri is not an http(s) URL") }
        clientEmail = email
        privateKeyID = object["private_key_id"] as? String ?? ""
        self.tokenURI = tokenURI
        signer = try RSASigner(pem: pem, source: source, store: store)
    }

    public var description: String {
        "service account \(clientEmail)" + (privateKeyID.isEmpty ? "" : " (key \(privateKeyID))")
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return nsError.localizedDescription
    }
}
