import Foundation
import Glibc
import TernCrypto
import TernStorage
import TernTestSupport

/// What the GCS tests share: fake-gcs-server (one per test process, a bucket per test), the fake
/// Google token endpoint and metadata server, fixtures, and a retry policy that never sleeps.
enum GCSTestSupport: StoreTestSupport {
    static let label = "gcs"

    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    /// The repository root, found from this file's path (Tests/TernStorageTests/…).
    static let packageRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let installHint = "run `make test` (scripts/install-test-tools.sh) to install fake-gcs-server"

    /// The tools virtualenv's Python, which has PyJWT and cryptography for the fake token endpoint.
    static func toolsPython() throws -> String {
        let python = "\(packageRoot)/.venv-tools/bin/python"
        guard access(python, X_OK) == 0 else { throw Missing(description: "\(python) is missing: \(installHint)") }
        return python
    }

    /// A file of Fixtures/gcs in the test bundle.
    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("gcs/\(name)").path
    }

    static func fixtureText(_ name: String) throws -> String {
        try String(contentsOfFile: fixture(name), encoding: .utf8)
    }

    /// Retries without waiting: the tests never sleep.
    static let noWait = RetryPolicy(maxAttempts: 3, sleep: { _ in })

    // MARK: fake-gcs-server

    static var fakeGCS: SharedResource<TestServer> { TestFakeGCS.shared }

    /// A fresh bucket on fake-gcs-server and a store on it (optionally under `prefix`).
    static func freshStore(prefix: String = "") async throws -> (store: GCSStore, bucket: String, server: TestServer) {
        let server = try await fakeGCS.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        try await createBucket(bucket, on: server)
        let store = try GCSStore(url: StoreURL(parsing: "gs://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)")),
                                 options: emulatorOptions(server))
        return (store, bucket, server)
    }

    static func emulatorOptions(_ server: TestServer) -> StoreOptions {
        StoreOptions(environment: ["STORAGE_EMULATOR_HOST": "127.0.0.1:\(server.port)"], retry: noWait)
    }

    static func createBucket(_ bucket: String, on server: TestServer) async throws {
        try await TestFakeGCS.createBucket(bucket, on: server)
    }

    /// Writes an object with a plain media upload, as another program would, behind the store's back.
    static func uploadBehindTheBack(_ bytes: [UInt8], bucket: String, name: String, on server: TestServer) async throws {
        let url = HTTPURL(string: "\(server.baseURL)/upload/storage/v1/b/\(bucket)/o?uploadType=media&name=\(PercentEncoding.encode(name))")!
        let response = try await HTTPClient().execute(HTTPRequest(method: "POST", url: url, body: .bytes(bytes)))
        guard response.isSuccess else { throw Missing(description: "upload failed: HTTP \(response.status)") }
    }

    // MARK: The fake token endpoint and metadata server

    static let fakeAuth = SharedResource<TestServer> {
        let python = try toolsPython()
        let fields = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("service-account-fields.json")))) as! [String: Any]
        let issuer = fields["client_email"] as! String
        let keyID = fields["private_key_id"] as! String
        let script = fixture("fake-google-auth.py")
        let publicKey = fixture("test-key.pub.pem")
        return try await TestServer.start(name: "fake-google-auth", program: python) { port in
            [script, "--port", "\(port)", "--public-key", publicKey, "--issuer", issuer, "--key-id", keyID]
        }
    }

    /// A service-account key file assembled from the fixtures (fields + `keyFile`'s PEM), with its
    /// token_uri pointing at `tokenURI`; removed by the caller.
    static func writeKeyFile(keyFile: String = "test-key.pem", tokenURI: String?) throws -> String {
        var fields = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("service-account-fields.json")))) as! [String: Any]
        fields["private_key"] = try fixtureText(keyFile)
        if let tokenURI { fields["token_uri"] = tokenURI }
        let path = "/tmp/tern-test-\(getpid())-gcs-key-\(UUID().uuidString.prefix(8)).json"
        try JSONSerialization.data(withJSONObject: fields).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The fake's record of one test id: token requests, refusals, the last accepted claims.
    static func authStats(_ server: TestServer, id: String) async throws -> [String: Any] {
        let response = try await HTTPClient().execute(HTTPRequest(method: "GET", url: HTTPURL(string: "\(server.baseURL)/control/\(id)/stats")!))
        return try JSONSerialization.jsonObject(with: Data(response.body)) as! [String: Any]
    }

    static func revokeTokens(_ server: TestServer, id: String) async throws {
        _ = try await HTTPClient().execute(HTTPRequest(method: "POST", url: HTTPURL(string: "\(server.baseURL)/control/\(id)/revoke")!))
    }

    /// A unique id for a test's state on the fake token endpoint.
    static func testID() -> String { UUID().uuidString.lowercased().prefix(12).description }


}


/// A wall clock the test moves by hand.
final class GCSTestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ seconds: TimeInterval) {
        current = Date(timeIntervalSince1970: seconds)
    }

    var now: Date { lock.withLock { current } }

    func advance(_ seconds: TimeInterval) {
        lock.withLock { current = current.addingTimeInterval(seconds) }
    }
}

