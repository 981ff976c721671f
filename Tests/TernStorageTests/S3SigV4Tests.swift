import Foundation
import Testing
import TernCrypto
@testable import TernStorage

/// Tern's SigV4 signer against every case of AWS's published SigV4 test suite (a vendor oracle:
/// Fixtures/aws-sigv4, see its SOURCE.md), in the header and the query (presigned) forms.
@Suite("SigV4 against the AWS test suite")
struct S3SigV4Tests {
    /// Every case folder of the suite, by name.
    static let caseNames: [String] = {
        let root = S3SigV4Case.root
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: "\(root)/\($0)/context.json") }.sorted()
    }()

    @Test("the suite is there: all 30 cases load")
    func suiteLoads() throws {
        // Parameterized tests over an empty list would pass silently; this one fails instead.
        #expect(Self.caseNames.count == 30, "found \(Self.caseNames.count) cases under \(S3SigV4Case.root)")
        for name in Self.caseNames { _ = try S3SigV4Case(name) }
    }

    @Test("Authorization header: canonical request, string to sign, signature, signed headers", arguments: caseNames)
    func headerSigning(_ name: String) throws {
        let vector = try S3SigV4Case(name)
        let signer = SigV4(region: vector.region, service: vector.service, normalizesPath: vector.normalize)
        let signed = signer.sign(vector.request, credentials: vector.credentials, date: vector.date,
                                 payloadHash: vector.payloadHash, sendsPayloadHash: vector.signBody)
        #expect(signed.canonicalRequest == (try vector.text("header-canonical-request.txt")))
        #expect(signed.stringToSign == (try vector.text("header-string-to-sign.txt")))
        #expect(signed.signature == (try vector.text("header-signature.txt")))
        let expected = try S3SigV4Case.parseRequest(vector.text("header-signed-request.txt"))
        #expect(S3SigV4Case.lines(signed.headers) == S3SigV4Case.lines(expected.headers))
        #expect(signed.authorization == expected.headers["Authorization"])
    }

    @Test("query string (presigned): canonical request, string to sign, signature, query parameters", arguments: caseNames)
    func querySigning(_ name: String) throws {
        let vector = try S3SigV4Case(name)
        let signer = SigV4(region: vector.region, service: vector.service, normalizesPath: vector.normalize)
        let signed = signer.presign(vector.request, credentials: vector.credentials, date: vector.date,
                                    expires: vector.expires, payloadHash: vector.payloadHash)
        #expect(signed.canonicalRequest == (try vector.text("query-canonical-request.txt")))
        #expect(signed.stringToSign == (try vector.text("query-string-to-sign.txt")))
        #expect(signed.signature == (try vector.text("query-signature.txt")))
        let expected = try S3SigV4Case.parseRequest(vector.text("query-signed-request.txt"))
        // The suite writes the parameters in its own order; the set is what must match.
        #expect(signed.query.split(separator: "&").map(String.init).sorted() == expected.rawQuery.split(separator: "&").map(String.init).sorted())
        #expect(signed.authorization == nil)
    }

    @Test("the derived key matches AWS's documented example, and signing is stable across calls (key cache)")
    func signingKey() throws {
        // docs.aws.amazon.com "Examples of how to derive a signing key for Signature Version 4".
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        let day = "20120215", region = "us-east-1", service = "iam"
        let signingKey = SigV4.signingKey(secret: secret, day: day, region: region, service: service)
        #expect(Hex.encode(signingKey) == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")

        let vector = try S3SigV4Case("get-vanilla")
        let signer = SigV4(region: vector.region, service: vector.service, normalizesPath: true)
        let first = signer.sign(vector.request, credentials: vector.credentials, date: vector.date, payloadHash: vector.payloadHash, sendsPayloadHash: false)
        let second = signer.sign(vector.request, credentials: vector.credentials, date: vector.date, payloadHash: vector.payloadHash, sendsPayloadHash: false)
        #expect(first.signature == second.signature)
        // Rotated credentials with the same key id get a fresh key, not the cached one.
        var rotated = vector.credentials
        rotated.secretAccessKey = "another-secret"
        let third = signer.sign(vector.request, credentials: rotated, date: vector.date, payloadHash: vector.payloadHash, sendsPayloadHash: false)
        #expect(third.signature != first.signature)
    }
}

/// One case folder of the suite: its context, its request, and its expected files.
struct S3SigV4Case {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("aws-sigv4").path

    struct Context: Decodable {
        struct Credentials: Decodable {
            var access_key_id: String
            var secret_access_key: String
            var token: String?
        }
        var credentials: Credentials
        var expiration_in_seconds: Int
        var normalize: Bool
        var region: String
        var service: String
        var sign_body: Bool
        var timestamp: String
    }

    struct ParsedRequest {
        var method: String
        var path: String
        var rawQuery: String
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    let name: String
    let directory: String
    let request: SigV4.Request
    let credentials: AWSCredentials
    let date: Date
    let region: String
    let service: String
    let normalize: Bool
    let signBody: Bool
    let expires: Int
    let payloadHash: String

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    init(_ name: String) throws {
        self.name = name
        directory = "\(Self.root)/\(name)"
        let context = try JSONDecoder().decode(Context.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/context.json")))
        guard let date = ISO8601DateFormatter().date(from: context.timestamp) else { throw Malformed(description: "\(name): bad timestamp") }
        self.date = date
        region = context.region
        service = context.service
        normalize = context.normalize
        signBody = context.sign_body
        expires = context.expiration_in_seconds
        credentials = AWSCredentials(accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
                                     sessionToken: context.credentials.token)
        let raw = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/request.txt"))
        let parsed = try Self.parseRequest(String(decoding: raw, as: UTF8.self))
        var query: [(name: String, value: String)] = []
        for item in parsed.rawQuery.split(separator: "&") where !item.isEmpty {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = PercentEncoding.decode(pair[0]), let value = PercentEncoding.decode(pair.count > 1 ? pair[1] : "") else {
                throw Malformed(description: "\(name): bad query item \(item)")
            }
            query.append((key, value))
        }
        guard let path = PercentEncoding.decode(parsed.path) else { throw Malformed(description: "\(name): bad path") }
        request = SigV4.Request(method: parsed.method, path: path, query: query, headers: parsed.headers)
        payloadHash = SHA256.hash(parsed.body).hex
    }

    func text(_ file: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(file)")), as: UTF8.self)
    }

    /// `METHOD TARGET HTTP/1.1`, `Name:value` lines (a line starting with whitespace continues the
    /// previous value), a blank line, the body. Values are kept as written.
    static func parseRequest(_ text: String) throws -> ParsedRequest {
        var lines = text.components(separatedBy: "\n")
        let first = lines.removeFirst()
        guard let space = first.firstIndex(of: " "), first.hasSuffix(" HTTP/1.1") else { throw Malformed(description: "bad request line \(first)") }
        let method = String(first[..<space])
        let target = String(first[first.index(after: space)...].dropLast(" HTTP/1.1".count))
        var path = target
        var rawQuery = ""
        if let question = target.firstIndex(of: "?") {
            path = String(target[..<question])
            rawQuery = String(target[target.index(after: question)...])
        }
        var pairs: [(String, String)] = []
        while !lines.isEmpty {
            let line = lines.removeFirst()
            if line.isEmpty { break }
            if line.first == " " || line.first == "\t", !pairs.isEmpty {
                pairs[pairs.count - 1].1 += "\n" + line
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { throw Malformed(description: "bad header line \(line)") }
            pairs.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        let body = Array(lines.joined(separator: "\n").utf8)
        return ParsedRequest(method: method, path: path, rawQuery: rawQuery, headers: HTTPHeaders(pairs), body: body)
    }

    /// Header lines with lowercased names, sorted, for comparing sets of headers.
    static func lines(_ headers: HTTPHeaders) -> [String] {
        headers.map { "\($0.name.lowercased()):\($0.value)" }.sorted()
    }
}
