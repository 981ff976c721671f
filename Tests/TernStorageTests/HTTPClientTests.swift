import Foundation
import Glibc
import TernCrypto
import TernPostgres
import TernStorage
import TernTestSupport
import Testing

/// The HTTP client against a real server (Python's http.server, plain and TLS): body framings,
/// streamed uploads from a file range, keep-alive, a connection the server dropped, certificate
/// verification, and the transport's retries with an injected clock.
@Suite("HTTPClient")
struct HTTPClientTests {
    static let script: String = {
        guard let url = Bundle.module.url(forResource: "Fixtures/http/test_server", withExtension: "py") else {
            fatalError("the test server script is missing from the test bundle")
        }
        return url.path
    }()

    /// One plain server and one TLS server (with its CA file) per test process.
    static let servers = Task { () throws -> (plain: TestServer, tls: TestServer, ca: String) in
        let plain = try await TestServer.start(name: "http", program: "python3", arguments: { [script, String($0)] })
        let directory = TestDatabase.scratchDirectory("tls")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let status = try ChildProcess.run(
            try #require(TestServer.resolve("openssl")),
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem",
             "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            outputPath: "\(directory)/openssl.log")
        guard status == 0 else { throw TestServer.StartFailure(description: "openssl req failed; see \(directory)/openssl.log") }
        let tls = try await TestServer.start(name: "https", program: "python3",
                                             arguments: { [script, String($0), "\(directory)/cert.pem", "\(directory)/key.pem"] })
        return (plain, tls, "\(directory)/cert.pem")
    }

    static func url(_ server: TestServer, _ path: String, secure: Bool = false, host: String = "127.0.0.1") -> HTTPURL {
        HTTPURL(secure: secure, host: host, port: server.port, path: path)
    }

    /// The bytes the server's /bytes/N route sends.
    static func expectedPattern(_ count: Int) -> [UInt8] {
        let block = (0..<(1 << 16)).map { UInt8(($0 * 7 + 3) % 251) }
        var bytes: [UInt8] = []
        while bytes.count < count { bytes += block.prefix(count - bytes.count) }
        return bytes
    }

    @Test("content-length, chunked and read-to-close bodies all arrive whole")
    func framings() async throws {
        let (plain, _, _) = try await Self.servers.value
        let client = HTTPClient(configuration: HTTPClient.Configuration())
        for route in ["bytes", "chunked", "close"] {
            let response = try await client.execute(HTTPRequest(method: "GET", url: Self.url(plain, "/\(route)/300001")))
            #expect(response.status == 200)
            #expect(response.body == Self.expectedPattern(300_001), "\(route)")
        }
    }

    @Test("a file range is streamed as the body, and a 2xx body streams into a sink")
    func fileRangeUploadAndStreamedDownload() async throws {
        let (plain, _, _) = try await Self.servers.value
        let path = TestDatabase.scratchDirectory("upload")
        let bytes = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let client = HTTPClient(configuration: HTTPClient.Configuration())
        let progress = TransferProgress(total: 1_000_000)
        let response = try await client.execute(HTTPRequest(method: "PUT", url: Self.url(plain, "/echo"),
                                                             body: .file(path: path, offset: 1_000_000, length: 1_000_000), progress: progress))
        #expect(response.bodyText == "\(SHA256.hash(Array(bytes[1_000_000..<2_000_000])).hex) 1000000")
        #expect(progress.completed == 1_000_000)

        let sink = ByteCollector()
        let streamed = try await client.execute(HTTPRequest(method: "GET", url: Self.url(plain, "/bytes/70000")), sink: sink)
        #expect(streamed.body.isEmpty)
        #expect(sink.bytes == Self.expectedPattern(70_000))
        // An error body is returned, not streamed.
        let missing = try await client.execute(HTTPRequest(method: "GET", url: Self.url(plain, "/nowhere")), sink: sink)
        #expect(missing.status == 404)
        #expect(missing.bodyText == "no such route")
    }

    @Test("connections are kept alive and reused")
    func keepAlive() async throws {
        let (plain, _, _) = try await Self.servers.value
        let client = HTTPClient(configuration: HTTPClient.Configuration())
        var counts: [String] = []
        for _ in 0..<3 {
            counts.append(try await client.execute(HTTPRequest(method: "GET", url: Self.url(plain, "/connection"))).bodyText)
        }
        #expect(counts == ["1", "2", "3"])
    }

    @Test("a dropped connection is a transient error naming the server, never a hang")
    func dropped() async throws {
        let (plain, _, _) = try await Self.servers.value
        let client = HTTPClient(configuration: HTTPClient.Configuration())
        do {
            _ = try await client.execute(HTTPRequest(method: "GET", url: Self.url(plain, "/drop")))
            Issue.record("a dropped connection gave an answer")
        } catch {
            #expect(error.isTransient)
            #expect(error.kind == .reset)
        }
    }

    @Test("TLS: verified against a trusted CA, refused with the reason otherwise")
    func tlsVerification() async throws {
        let (_, tls, ca) = try await Self.servers.value
        var trusting = HTTPClient.Configuration()
        trusting.caBundle = ca
        let ok = try await HTTPClient(configuration: trusting).execute(HTTPRequest(method: "GET", url: Self.url(tls, "/bytes/10", secure: true, host: "localhost")))
        #expect(ok.body == Self.expectedPattern(10))
        // An IP address is checked as one (the certificate names 127.0.0.1 too).
        let byAddress = try await HTTPClient(configuration: trusting).execute(HTTPRequest(method: "GET", url: Self.url(tls, "/bytes/10", secure: true)))
        #expect(byAddress.status == 200)

        // The system trust store does not know this self-signed certificate.
        do {
            _ = try await HTTPClient(configuration: HTTPClient.Configuration()).execute(
                HTTPRequest(method: "GET", url: Self.url(tls, "/bytes/10", secure: true, host: "localhost")))
            Issue.record("an untrusted certificate was accepted")
        } catch {
            #expect(error.kind == .tls)
            #expect(error.message.contains("certificate verification failed"))
            #expect(!error.isTransient)
        }
    }

    @Test("the transport retries 503 with backoff from the injected clock, and gives up with the store's code")
    func retries() async throws {
        let (plain, _, _) = try await Self.servers.value
        let slept = SleepRecorder()
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(100), maxDelay: .seconds(1),
                                 sleep: { await slept.record($0) }, random: { 0.5 })
        let transport = StoreTransport(client: HTTPClient(configuration: HTTPClient.Configuration()), retry: policy, store: "test://flaky",
                                       describe: ErrorBody.xml)
        let key = UUID().uuidString
        let response = try await transport.perform(key: "k") { HTTPRequest(method: "GET", url: Self.url(plain, "/flaky/\(key)/2")) }
        #expect(response.bodyText == "ok")
        #expect(await slept.delays == [.milliseconds(50), .milliseconds(100)])

        let always = UUID().uuidString
        do {
            _ = try await transport.perform(key: "k") { HTTPRequest(method: "GET", url: Self.url(plain, "/flaky/\(always)/99")) }
            Issue.record("a store that always throttles succeeded")
        } catch {
            #expect(error.kind == .transient)
            #expect(error.status == 503)
            #expect(error.code == "SlowDown")
            #expect(error.description == "test://flaky key k: HTTP 503 SlowDown: try later")
        }
        #expect(await slept.delays.count == 2 + 3)

        // A 400 is not retried.
        let before = await slept.delays.count
        await #expect(throws: StoreError.self) {
            _ = try await transport.perform(key: "k") { HTTPRequest(method: "GET", url: Self.url(plain, "/status/400")) }
        }
        #expect(await slept.delays.count == before)
    }

    @Test("URLs: parsing, Host header, and the query kept out of descriptions")
    func urls() throws {
        let url = try #require(HTTPURL(string: "https://example.com:8443/a/b%20c?X-Amz-Signature=secret"))
        #expect(url.host == "example.com")
        #expect(url.port == 8443)
        #expect(url.target == "/a/b%20c?X-Amz-Signature=secret")
        #expect(url.hostHeader == "example.com:8443")
        #expect(!url.description.contains("secret"))
        #expect(HTTPURL(string: "http://127.0.0.1")?.hostHeader == "127.0.0.1")
        #expect(HTTPURL(string: "ftp://x") == nil)
        #expect(HTTPURL(string: "http://user:pw@host/") == nil)
        #expect(PercentEncoding.encode("a b/ü~") == "a%20b%2F%C3%BC~")
        #expect(PercentEncoding.encode("a b/ü", keepSlash: true) == "a%20b/%C3%BC")
        #expect(PercentEncoding.decode("a%20b%2F%C3%BC") == "a b/ü")
    }
}

actor SleepRecorder {
    var delays: [Duration] = []
    func record(_ delay: Duration) { delays.append(delay) }
}
