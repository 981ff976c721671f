import Foundation
import Glibc
@testable import TernStorage
import TernTestSupport

/// What the Azure tests share: the fake Blob service (one per test process, a container per test),
/// the SDK vectors, and a retry policy that never sleeps.
enum AzureTestSupport: StoreTestSupport {
    static let label = "az"

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let account = AzureCredentials.developmentAccount
    static let key = AzureCredentials.developmentKey
    /// A valid key that is not the account's.
    static let wrongKey = "AAAA" + String(key.dropFirst(4))

    /// A file of Fixtures/azure in the test bundle.
    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("azure/\(name)").path
    }

    /// Retries without waiting: the tests never sleep.
    static let noWait = RetryPolicy(maxAttempts: 3, sleep: { _ in })

    // MARK: Vectors

    struct Vectors: Decodable {
        var account: String
        var key: String
        var version: String
        var date: String
        var clock: Int64
        var requests: [RequestVector]
        var sas: [SASVector]
        var crc64: [CRCVector]
        var headerOrder: [String]
    }

    struct RequestVector: Decodable {
        var name: String
        var method: String
        var url: String
        var headers: [[String]]
        var body: String
        var stringToSign: String
        var authorization: String
        var tern: Operation
    }

    /// Which of Tern's request builders makes the same request, with what.
    struct Operation: Decodable {
        var op: String
        var endpoint: String
        var requestID: String
        var name: String?
        var body: String?
        var createOnly: Bool?
        var contentType: String?
        var crc32c: String?
        var crc64: String?
        var writeID: String?
        var start: Int64?
        var end: Int64?
        var etag: String?
        var blockID: String?
        var blockIDs: [String]?
        var prefix: String?
        var maxResults: Int?
        var marker: String?
        var source: String?
        var sourceSAS: String?
        var sourceETag: String?
        var sync: Bool?
        var container: String?
    }

    struct SASVector: Decodable {
        var container: String
        var blob: String
        var permissions: String
        var expiry: Int64
        var start: Int64?
        var `protocol`: String?
        var stringToSign: String
        var token: String
    }

    struct CRCVector: Decodable {
        var data: String
        var crc64: String
        var header: String
    }

    static func vectors() throws -> Vectors {
        try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("vectors.json"))))
    }

    // MARK: The fake Blob service

    static let fake = SharedResource<TestServer> {
        try await TestServer.start(name: "fake-azure-blob", program: "python3") { port in
            [fixture("fake_blob_service.py"), "--port", "\(port)", "--account", account, "--key", key]
        }
    }

    /// The fake's endpoint, path-style as the emulator's.
    static func endpoint(_ server: TestServer) -> String { "\(server.baseURL)/\(account)" }

    static func options(_ server: TestServer, environment: [String: String]? = nil) -> StoreOptions {
        StoreOptions(endpoint: endpoint(server), environment: environment ?? ["AZURE_STORAGE_KEY": key], retry: noWait)
    }

    /// A fresh container on the fake and a store on it (optionally under `prefix`).
    static func freshStore(prefix: String = "") async throws -> (store: AzureStore, container: String, server: TestServer) {
        let server = try await fake.value()
        let container = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        let store = try AzureStore(url: storeURL(container, prefix: prefix), options: options(server))
        try await store.createContainer()
        return (store, container, server)
    }

    static func storeURL(_ container: String, prefix: String = "") throws -> StoreURL {
        try StoreURL(parsing: "az://\(account)/\(container)" + (prefix.isEmpty ? "" : "/\(prefix)"))
    }

    // MARK: Test controls of the fake

    /// The operations the fake accepted in `container`, in order: `(operation, blob, block id)`.
    static func log(_ server: TestServer, container: String) async throws -> [(op: String, blob: String?, blockID: String?)] {
        let response = try await control(server, "GET", "log?container=\(container)")
        let entries = try JSONSerialization.jsonObject(with: Data(response.body)) as! [[String: Any]]
        return entries.map { ($0["op"] as! String, $0["blob"] as? String, $0["blockid"] as? String) }
    }

    /// Makes the next `count` `operation`s in `container` fail or misbehave as `spec` says.
    static func fault(_ server: TestServer, container: String, operation: String, count: Int = 1, _ spec: [String: Any]) async throws {
        var body = spec
        body["container"] = container
        body["op"] = operation
        body["count"] = count
        _ = try await control(server, "POST", "fault", body: try JSONSerialization.data(withJSONObject: body))
    }

    /// Writes `bytes` to the blob as another writer would, behind the store's back.
    static func replace(_ server: TestServer, container: String, blob: String, with bytes: [UInt8]) async throws {
        _ = try await control(server, "POST", "replace?container=\(container)&blob=\(PercentEncoding.encode(blob))", body: Data(bytes))
    }

    static func expireBlocks(_ server: TestServer, container: String, blob: String) async throws {
        _ = try await control(server, "POST", "expire-blocks?container=\(container)&blob=\(PercentEncoding.encode(blob))")
    }

    static func pendingCopy(_ server: TestServer, container: String, polls: Int) async throws {
        _ = try await control(server, "POST", "pending-copy",
                              body: try JSONSerialization.data(withJSONObject: ["container": container, "polls": polls]))
    }

    private static func control(_ server: TestServer, _ method: String, _ path: String, body: Data? = nil) async throws -> HTTPResponse {
        let response = try await HTTPClient().execute(HTTPRequest(
            method: method, url: HTTPURL(string: "\(server.baseURL)/_fake/\(path)")!, body: body.map { .bytes(Array($0)) }))
        guard response.isSuccess else { throw Failure(description: "fake control \(path): HTTP \(response.status) \(response.bodyText)") }
        return response
    }

    // MARK: Data


}


