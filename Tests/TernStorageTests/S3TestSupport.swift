import Foundation
import Glibc
import TernCrypto
import TernStorage
import TernTestSupport

/// What the S3 tests share: one moto server per test process, started with signature checking on
/// (`INITIAL_NO_AUTH_ACTION_COUNT=3`: the first three calls make an IAM user with an allow-all policy
/// and its access key, every later request must be correctly signed), a bucket per test, and the
/// fake instance metadata service.
enum S3TestSupport: StoreTestSupport {
    static let label = "s3"

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A moto server and the access key its IAM user got.
    struct Moto: Sendable {
        let server: TestServer
        let accessKeyID: String
        let secretAccessKey: String

        var endpoint: String { server.baseURL }
        var credentials: AWSCredentials { AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, source: "moto IAM user") }

        /// The environment a store is opened with: the user's keys and nothing inherited (no
        /// AWS_CA_BUNDLE, no HOME, no profile).
        var environment: [String: String] {
            ["AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_REGION": "us-east-1"]
        }
    }

    static func fixture(_ path: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(path).path
    }

    /// `.venv-tools/moto-crc32c` at the repository root (google-crc32c alone, so moto's own Python
    /// sees nothing else of the tools' environment).
    static let motoCRC32CLibrary: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".venv-tools/moto-crc32c").path
    }()

    /// Retries without waiting: the tests never sleep.
    static let noWait = RetryPolicy(maxAttempts: 3, sleep: { _ in })

    static let moto = SharedResource<Moto> {
        // Fixtures/s3/moto-support, on moto's PYTHONPATH: a real CRC-32C under the `crc32c` name moto
        // imports (without it moto silently computes plain CRC-32), and sitecustomize.py, which makes
        // moto canonicalize paths and queries as S3 does before checking a signature (see there).
        // After it, google-crc32c (installed by `make test` into .venv-tools/moto-crc32c), which the
        // stand-in uses to compute at C speed; without it the stand-in's own code is correct but slow.
        let server = try await TestServer.start(
            name: "moto", program: "moto_server", arguments: { port in ["-H", "127.0.0.1", "-p", "\(port)"] },
            environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "3", "PYTHONPATH": fixture("s3/moto-support") + ":" + motoCRC32CLibrary])
        let (keyID, secret) = try await bootstrapIAM(server)
        return Moto(server: server, accessKeyID: keyID, secretAccessKey: secret)
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
    static func s3Request(_ moto: Moto, method: String, path: String, query: [(name: String, value: String)] = [],
                          headers: [(String, String)] = [], body: [UInt8] = []) async throws -> HTTPResponse {
        let base = HTTPURL(string: moto.endpoint)!
        let fields = HTTPHeaders([("Host", base.hostHeader)] + headers)
        let signed = SigV4(region: "us-east-1", service: "s3").sign(
            SigV4.Request(method: method, path: path, query: query, headers: fields), credentials: moto.credentials, date: Date(),
            payloadHash: SHA256.hash(body).hex)
        let url = HTTPURL(secure: false, host: base.host, port: base.port, path: signed.path, query: signed.query)
        return try await HTTPClient().execute(HTTPRequest(method: method, url: url, headers: signed.headers, body: body.isEmpty ? nil : .bytes(body)))
    }

    static func createBucket(_ bucket: String, on moto: Moto) async throws {
        let response = try await s3Request(moto, method: "PUT", path: "/\(bucket)")
        guard response.isSuccess else { throw Failure(description: "cannot create bucket \(bucket): HTTP \(response.status) \(response.bodyText.prefix(300))") }
    }

    static func options(_ moto: Moto, environment extra: [String: String] = [:]) -> StoreOptions {
        StoreOptions(endpoint: moto.endpoint, environment: moto.environment.merging(extra) { $1 }, retry: noWait)
    }

    /// A fresh bucket on moto and a store on it (optionally under `prefix`).
    static func freshStore(prefix: String = "") async throws -> (store: S3Store, bucket: String, moto: Moto) {
        let moto = try await moto.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        try await createBucket(bucket, on: moto)
        let store = try S3Store(url: StoreURL(parsing: "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)")), options: options(moto))
        return (store, bucket, moto)
    }

    // MARK: The fake instance metadata service

    static let fakeIMDS = SharedResource<TestServer> {
        try await TestServer.start(name: "fake-imds", program: "python3") { port in
            [fixture("s3/fake_imds.py"), "--port", "\(port)"]
        }
    }

    /// A unique id for a test's state on the fake metadata service.
    static func testID() -> String { UUID().uuidString.lowercased().prefix(12).description }

    static func configureIMDS(_ server: TestServer, id: String, _ settings: [String: String]) async throws {
        let body = try JSONSerialization.data(withJSONObject: settings)
        let response = try await HTTPClient().execute(HTTPRequest(
            method: "POST", url: HTTPURL(string: "\(server.baseURL)/control/\(id)/config")!, body: .bytes(Array(body))))
        guard response.isSuccess else { throw Failure(description: "cannot configure the fake IMDS: HTTP \(response.status)") }
    }

    static func imdsStats(_ server: TestServer, id: String) async throws -> [String: Int] {
        let response = try await HTTPClient().execute(HTTPRequest(method: "GET", url: HTTPURL(string: "\(server.baseURL)/control/\(id)/stats")!))
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Int] ?? [:]
    }

    // MARK: Data



    /// A scratch directory; removed by the caller.
    static func scratchDirectory() throws -> String {
        let path = "/tmp/tern-test-\(getpid())-s3-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}



extension S3TestSupport {
    /// Fixtures/s3/fault_proxy.py in front of the shared moto: failures injected per bucket.
    static let faultProxy = SharedResource<TestServer> {
        let upstream = try await S3TestSupport.moto.value().server.port
        return try await TestServer.start(name: "s3-fault-proxy", program: "python3") { port in
            [fixture("s3/fault_proxy.py"), "--port", "\(port)", "--upstream-port", "\(upstream)"]
        }
    }

    /// A fresh bucket and a store that reaches moto through the fault proxy.
    static func storeBehindProxy() async throws -> (store: S3Store, bucket: String, proxy: TestServer) {
        let moto = try await moto.value()
        let proxy = try await faultProxy.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        try await createBucket(bucket, on: moto)
        let options = StoreOptions(endpoint: proxy.baseURL, environment: moto.environment, retry: noWait)
        return (try S3Store(url: StoreURL(parsing: "s3://\(bucket)"), options: options), bucket, proxy)
    }

    static func injectFault(_ proxy: TestServer, bucket: String, operation: String, mode: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["bucket": bucket, "operation": operation, "mode": mode])
        let response = try await HTTPClient().execute(HTTPRequest(method: "POST", url: HTTPURL(string: "\(proxy.baseURL)/__fault")!, body: .bytes(Array(body))))
        guard response.isSuccess else { throw Failure(description: "cannot arm the fault: HTTP \(response.status)") }
    }

    /// Requests the proxy saw for `bucket`, by operation (`complete`, `part`, `get`).
    static func proxyStats(_ proxy: TestServer, bucket: String) async throws -> [String: Int] {
        let response = try await HTTPClient().execute(HTTPRequest(method: "GET", url: HTTPURL(string: "\(proxy.baseURL)/__fault/stats?bucket=\(bucket)")!))
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Int] ?? [:]
    }
}
