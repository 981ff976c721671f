import Foundation
import Testing
import TernCrypto
@testable import TernStorage

/// SharedKey signatures, request shapes, SAS tokens and CRC64 against the official Azure SDK's
/// output (Fixtures/azure/vectors.json, made by scripts/azure-vectors.py), and where credentials and
/// endpoints come from.
@Suite("Azure signing and credentials")
struct AzureSignerTests {
    typealias Support = AzureTestSupport

    @Test("the signer reproduces the SDK's string to sign and Authorization for every captured request")
    func sharedKeyVectors() throws {
        let vectors = try Support.vectors()
        // An empty or truncated vector file must fail, never pass vacuously.
        #expect(vectors.requests.count == 38)
        let signer = try AzureSigner(account: vectors.account, key: vectors.key)
        for vector in vectors.requests {
            let request = try Self.request(vector)
            #expect(signer.stringToSign(for: request) == vector.stringToSign, "\(vector.name)")
            #expect(signer.authorization(for: request) == vector.authorization, "\(vector.name)")
        }
    }

    @Test("Tern's request builders make the SDK's requests: method, URL, headers, body and signature")
    func requestShapes() throws {
        let vectors = try Support.vectors()
        #expect(vectors.requests.count == 38)
        var checked = 0
        for vector in vectors.requests {
            let built = try Self.build(vector.tern, vectors: vectors)
            let expected = try Self.request(vector)
            #expect(built.method == expected.method, "\(vector.name)")
            #expect(built.url == expected.url, "\(vector.name): \(built.url.target) vs \(expected.url.target)")
            #expect(built.headers["Authorization"] == vector.authorization, "\(vector.name)")
            let builtNames = Set(built.headers.map { $0.name.lowercased() }).subtracting(["authorization"])
            let expectedNames = Set(expected.headers.map { $0.name.lowercased() })
            #expect(builtNames == expectedNames, "\(vector.name)")
            for field in expected.headers {
                #expect(built.headers[field.name] == field.value, "\(vector.name): \(field.name)")
            }
            #expect(Self.bytes(built.body) == Self.bytes(expected.body), "\(vector.name)")
            checked += 1
        }
        #expect(checked == 38)
    }

    @Test("service SAS tokens equal the SDK's generate_blob_sas output")
    func sasVectors() throws {
        let vectors = try Support.vectors()
        #expect(vectors.sas.count == 3)
        let signer = try AzureSigner(account: vectors.account, key: vectors.key)
        for vector in vectors.sas {
            let made = try AzureSAS.signBlob(
                signer: signer, container: vector.container, blob: vector.blob, permissions: vector.permissions,
                expiry: Date(timeIntervalSince1970: TimeInterval(vector.expiry)),
                start: vector.start.map { Date(timeIntervalSince1970: TimeInterval($0)) }, protocols: vector.protocol,
                version: vectors.version)
            #expect(made.stringToSign == vector.stringToSign)
            #expect(made.token == vector.token)
        }
        // Permissions are put in the service's order; unknown letters are refused.
        let expiry = Date(timeIntervalSince1970: 1_800_000_000)
        let reordered = try AzureSAS.blobToken(signer: signer, container: "c", blob: "b", permissions: "dwcar", expiry: expiry)
        #expect(reordered.contains("sp=racwd&"))
        #expect(throws: StoreError.self) { try AzureSAS.blobToken(signer: signer, container: "c", blob: "b", permissions: "rl", expiry: expiry) }
        #expect(throws: StoreError.self) {
            try AzureSAS.blobToken(signer: signer, container: "c", blob: "b", permissions: "r", expiry: expiry, start: expiry)
        }
    }

    @Test("CRC64 equals the SDK's native CRC64, whole and in pieces")
    func crc64Vectors() throws {
        let vectors = try Support.vectors()
        #expect(vectors.crc64.count == 6)
        for vector in vectors.crc64 {
            let data = try Base64.decode(vector.data)
            let crc = AzureCRC64.checksum(data)
            #expect(crc == UInt64(vector.crc64, radix: 16), "\(data.count) bytes")
            #expect(AzureCRC64.base64Encoded(crc) == vector.header)
            for cut in [0, 1, 7, data.count / 2, data.count] where cut <= data.count {
                var pieces = AzureCRC64()
                pieces.update(Array(data[..<cut]))
                pieces.update(Array(data[cut...]))
                #expect(pieces.value == crc)
            }
        }
    }

    @Test("x-ms-* headers are ordered as the service orders them")
    func headerOrder() throws {
        let expected = try Support.vectors().headerOrder
        #expect(expected.count == 26)
        #expect(expected.reversed().sorted(by: AzureSigner.headerOrder) == expected)
        #expect(expected.shuffled().sorted(by: AzureSigner.headerOrder) == expected)
    }

    @Test("dates are formatted in UTC whatever the locale")
    func dates() throws {
        let vectors = try Support.vectors()
        let clock = Date(timeIntervalSince1970: TimeInterval(vectors.clock))
        #expect(AzureDate.rfc1123(clock) == vectors.date)
        #expect(AzureDate.rfc1123(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(AzureDate.iso8601(clock) == "2023-11-14T22:13:20Z")
        #expect(AzureDate.iso8601(Date(timeIntervalSince1970: 1_709_251_199.9)) == "2024-02-29T23:59:59Z")
    }

    // MARK: Credentials and endpoints

    func resolve(_ environment: [String: String], file: String? = nil, endpoint: String? = nil,
                 url: String = "az://devstoreaccount1/ckpts") throws(StoreError) -> AzureStore {
        try AzureStore(url: StoreURL(parsing: url), options: StoreOptions(endpoint: endpoint, environment: environment, credentialsFile: file))
    }

    @Test("credentials come from credentials_file, then the connection string, then the key, then a SAS token")
    func sourceOrder() throws {
        let key = Support.key
        let connection = "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=\(key);EndpointSuffix=core.windows.net"
        let file = try Support.scratchFile(Array("account_key = \(key)\n".utf8))
        defer { unlink(file) }
        let all = ["AZURE_STORAGE_CONNECTION_STRING": connection, "AZURE_STORAGE_KEY": key, "AZURE_STORAGE_SAS_TOKEN": "sv=2021-08-06&sig=abc"]
        #expect(try resolve(all, file: file).credentials.origin == "credentials_file \(file)")
        #expect(try resolve(all).credentials.origin == "AZURE_STORAGE_CONNECTION_STRING")
        #expect(try resolve(all.filter { $0.key != "AZURE_STORAGE_CONNECTION_STRING" }).credentials.origin == "AZURE_STORAGE_KEY")
        let sas = try resolve(["AZURE_STORAGE_SAS_TOKEN": "?sv=2021-08-06&sig=abc"])
        guard case .sas(let token) = sas.credentials.method else { Issue.record("the SAS token was not used"); return }
        #expect(token.query == "sv=2021-08-06&sig=abc")
        // Empty values count as unset.
        #expect(try resolve(["AZURE_STORAGE_CONNECTION_STRING": " ", "AZURE_STORAGE_KEY": key]).credentials.origin == "AZURE_STORAGE_KEY")
        do {
            _ = try resolve([:])
            Issue.record("no credentials were accepted")
        } catch {
            #expect(error.kind == .credentials)
            #expect(error.message.contains("AZURE_STORAGE_KEY"))
        }
    }

    @Test("the endpoint is --endpoint, else the connection string's, else the public one; path-style keeps its path")
    func endpoints() throws {
        let key = ["AZURE_STORAGE_KEY": Support.key]
        #expect(try resolve(key).endpoint.description == "https://devstoreaccount1.blob.core.windows.net/")
        let emulator = try resolve(key, endpoint: "http://127.0.0.1:10000/devstoreaccount1/")
        #expect(emulator.endpoint.description == "http://127.0.0.1:10000/devstoreaccount1")
        #expect(emulator.blobPath("a b/c") == "/devstoreaccount1/ckpts/a%20b/c")
        let suffix = try resolve(["AZURE_STORAGE_CONNECTION_STRING": "AccountName=devstoreaccount1;AccountKey=\(Support.key);EndpointSuffix=core.chinacloudapi.cn"])
        #expect(suffix.endpoint.description == "https://devstoreaccount1.blob.core.chinacloudapi.cn/")
        let development = try resolve(["AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"])
        #expect(development.endpoint.description == "http://127.0.0.1:10000/devstoreaccount1")
        let named = "BlobEndpoint=http://10.1.2.3:9000/devstoreaccount1;AccountName=devstoreaccount1;AccountKey=\(Support.key)"
        #expect(try resolve(["AZURE_STORAGE_CONNECTION_STRING": named]).endpoint.description == "http://10.1.2.3:9000/devstoreaccount1")
        #expect(try resolve(["AZURE_STORAGE_CONNECTION_STRING": named], endpoint: "https://override.example").endpoint.description
            == "https://override.example/")
        #expect(throws: StoreError.self) { try resolve(key, endpoint: "ftp://x") }
    }

    @Test("key files: name = value lines or a connection string; the account must match; unknown fields refused")
    func keyFiles() throws {
        func open(_ text: String) throws(StoreError) -> AzureStore {
            let path = try! Support.scratchFile(Array(text.utf8))
            defer { unlink(path) }
            return try resolve([:], file: path)
        }
        let lines = try open("# Tern test\naccount_name = devstoreaccount1\naccount_key = \(Support.key)   # the emulator's\nblob_endpoint = http://127.0.0.1:10000/devstoreaccount1\n")
        #expect(lines.endpoint.description == "http://127.0.0.1:10000/devstoreaccount1")
        guard case .sharedKey = lines.credentials.method else { Issue.record("no key"); return }
        let connection = try open("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=\(Support.key);BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;\n")
        #expect(connection.endpoint.port == 10000)
        let token = try open("sas_token = ?sv=2021-08-06&sr=c&sig=abc%2B\n")
        guard case .sas(let sas) = token.credentials.method else { Issue.record("no token"); return }
        #expect(sas.query == "sv=2021-08-06&sr=c&sig=abc%2B")
        for (text, fragment) in [
            ("account_name = otheraccount\naccount_key = \(Support.key)\n", "is for account otheraccount"),
            ("account_key = \(Support.key)\nregion = west\n", "unknown field region"),
            ("account_name = devstoreaccount1\n", "none of account_key"),
            ("", "is empty"),
            ("sas_token = sv=2021-08-06&sp=r\n", "no sig parameter"),
        ] {
            do {
                _ = try open(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.kind == .credentials)
                #expect(error.message.contains(fragment), "\(error.message)")
            }
        }
        do {
            _ = try resolve([:], file: "/nonexistent/azure.key")
            Issue.record("a missing key file was read")
        } catch {
            #expect(error.message.contains("/nonexistent/azure.key"))
        }
    }

    @Test("credential errors and descriptions never show a key or token")
    func secretsStayHidden() throws {
        let secretKey = Base64.encode(Array("a key nobody may see, 32 bytes!!".utf8))
        let secretToken = "sv=2021-08-06&sig=TOPSECRETSIGNATURE"
        for environment in [
            ["AZURE_STORAGE_KEY": "not base64 \(secretKey)"],
            ["AZURE_STORAGE_CONNECTION_STRING": "AccountName=devstoreaccount1;AccountKey=%%\(secretKey)"],
            ["AZURE_STORAGE_CONNECTION_STRING": "AccountName=other;AccountKey=\(secretKey)"],
            ["AZURE_STORAGE_ACCOUNT": "other", "AZURE_STORAGE_KEY": secretKey],
            ["AZURE_STORAGE_CONNECTION_STRING": "garbage \(secretKey)"],
        ] {
            do {
                _ = try resolve(environment)
                Issue.record("accepted \(environment.keys.sorted())")
            } catch {
                #expect(error.kind == .credentials)
                #expect(!error.description.contains(secretKey))
                #expect(!error.description.contains("a key nobody"))
            }
        }
        let store = try resolve(["AZURE_STORAGE_KEY": secretKey])
        let sasStore = try resolve(["AZURE_STORAGE_SAS_TOKEN": secretToken])
        for text in [String(describing: store), String(reflecting: store), String(describing: store.credentials),
                     String(reflecting: sasStore), String(describing: sasStore.credentials.method)] {
            #expect(!text.contains(secretKey))
            #expect(!text.contains("TOPSECRET"))
        }
        var dumped = ""
        dump(store, to: &dumped)
        dump(sasStore, to: &dumped)
        #expect(!dumped.contains(secretKey))
        #expect(!dumped.contains("TOPSECRET"))
    }

    // MARK: Helpers

    /// The captured request as an `HTTPRequest` (the client sets Content-Length from the body).
    static func request(_ vector: AzureTestSupport.RequestVector) throws -> HTTPRequest {
        let url = try #require(HTTPURL(string: vector.url))
        let body = try Base64.decode(vector.body)
        let headers = HTTPHeaders(vector.headers.filter { $0[0].lowercased() != "content-length" }.map { ($0[0], $0[1]) })
        if let length = vector.headers.first(where: { $0[0].lowercased() == "content-length" }) {
            #expect(Int(length[1]) == body.count, "\(vector.name)")
        }
        return HTTPRequest(method: vector.method, url: url, headers: headers, body: body.isEmpty ? nil : .bytes(body))
    }

    static func bytes(_ body: BlobSource?) -> [UInt8] {
        guard case .bytes(let bytes) = body else { return [] }
        return bytes
    }

    /// What Tern's builder for `operation` sends, at the vectors' clock and request id.
    static func build(_ operation: AzureTestSupport.Operation, vectors: AzureTestSupport.Vectors) throws -> HTTPRequest {
        let container = operation.container ?? "ckpts"
        var store = try AzureStore(
            url: StoreURL(parsing: "az://\(vectors.account)/\(container)"),
            options: StoreOptions(endpoint: operation.endpoint, environment: ["AZURE_STORAGE_KEY": vectors.key]),
            now: { Date(timeIntervalSince1970: TimeInterval(vectors.clock)) })
        let requestID = operation.requestID
        store.makeRequestID = { requestID }
        let name = operation.name ?? ""
        let body = try Base64.decode(operation.body ?? "")
        let crc32c = try operation.crc32c.map { try #require(UInt32($0, radix: 16)) } ?? 0
        switch operation.op {
        case "putBlob":
            let checksums = AzureChecksums(crc64: AzureCRC64.checksum(body), crc32c: crc32c)
            #expect(AzureCRC64.base64Encoded(checksums.crc64) == operation.crc64)
            return store.putBlobRequest(name: name, body: .bytes(body), createOnly: operation.createOnly ?? false,
                                        contentType: operation.contentType, checksums: checksums, writeID: try #require(operation.writeID))
        case "head":
            return store.headRequest(name: name)
        case "getRange":
            return store.getRequest(name: name, range: try #require(operation.start)..<(try #require(operation.end)), etag: try #require(operation.etag))
        case "delete":
            return store.deleteRequest(name: name)
        case "putBlock":
            #expect(AzureCRC64.base64Encoded(AzureCRC64.checksum(body)) == operation.crc64)
            return store.putBlockRequest(name: name, blockID: try #require(operation.blockID), body: .bytes(body), crc64: AzureCRC64.checksum(body))
        case "putBlockList":
            return store.putBlockListRequest(name: name, blockIDs: try #require(operation.blockIDs), createOnly: operation.createOnly ?? false,
                                             contentType: operation.contentType, crc32c: crc32c, writeID: try #require(operation.writeID))
        case "getBlockList":
            return store.getBlockListRequest(name: name)
        case "list":
            return store.listRequest(prefix: operation.prefix ?? "", marker: operation.marker, maxResults: try #require(operation.maxResults))
        case "copy":
            return store.copyRequest(name: name, sourceName: try #require(operation.source), sourceSAS: operation.sourceSAS,
                                     sourceETag: try #require(operation.sourceETag), sync: operation.sync == true)
        case "createContainer":
            return store.createContainerRequest()
        default:
            throw AzureTestSupport.Failure(description: "unknown operation \(operation.op) in the vectors")
        }
    }
}
