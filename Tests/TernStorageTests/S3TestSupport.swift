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

    /// A moto server and the access key its IAM user got (shared with the scheduler tests).
    typealias Moto = TestMoto

    static func fixture(_ path: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(path).path
    }

    /// Retries without waiting: the tests never sleep.
    static let noWait = RetryPolicy(maxAttempts: 3, sleep: { _ in })

    static var moto: SharedResource<TestMoto> { TestMoto.shared }

    /// A signed request to moto's S3 outside any store (bucket creation, writes behind a store's back).
    static func s3Request(_ moto: Moto, method: String, path: String, query: [(name: String, value: String)] = [],
                          headers: [(String, String)] = [], body: [UInt8] = []) async throws -> HTTPResponse {
        try await moto.s3Request(method: method, path: path, query: query, headers: headers, body: body)
    }

    static func createBucket(_ bucket: String, on moto: Moto) async throws {
        try await moto.createBucket(bucket)
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
