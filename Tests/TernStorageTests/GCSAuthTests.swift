import Foundation
import Testing
import TernStorage
import TernTestSupport

/// Service-account JWTs against PyJWT's vectors, and the token exchange, the cache and the metadata
/// server against the local fake token endpoint (fake-gcs-server checks no token at all).
@Suite("GCS credentials")
struct GCSAuthTests {
    typealias Support = GCSTestSupport

    struct Vector: Decodable {
        var iat: Int64
        var aud: String
        var scope: String
        var jwt: String
    }

    @Test("Tern's RS256 JWTs equal PyJWT's byte for byte")
    func jwtVectors() throws {
        let path = try Support.writeKeyFile(tokenURI: nil)
        defer { unlink(path) }
        let key = try ServiceAccountKey(contentsOfFile: path)
        #expect(key.tokenURI == ServiceAccountKey.defaultTokenURI)
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: URL(fileURLWithPath: Support.fixture("jwt-vectors.json"))))
        #expect(vectors.count == 3)
        for vector in vectors {
            let jwt = try GoogleJWT.assertion(key: key, scope: vector.scope, audience: vector.aud, issuedAt: vector.iat)
            #expect(jwt == vector.jwt)
        }
    }

    @Test("unusable key files fail with the file named and the key never shown")
    func badKeyFiles() throws {
        let pem = try Support.fixtureText("test-key.pem")
        func failure(_ json: String) -> StoreError? {
            let path = "/tmp/tern-test-\(getpid())-gcs-bad-\(UUID().uuidString.prefix(8)).json"
            _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
            defer { unlink(path) }
            do {
                _ = try ServiceAccountKey(contentsOfFile: path, store: "gs://b")
                return nil
            } catch {
                #expect(error.description.contains(path))
                #expect(!error.description.contains("PRIVATE KEY"))
                #expect(error.kind == .credentials)
                return error
            }
        }
        #expect(failure("not json")?.message.contains("not a JSON object") == true)
        #expect(failure(#"{"type": "authorized_user", "refresh_token": "secret-refresh"}"#)?.description.contains("secret-refresh") == false)
        #expect(failure(#"{"type": "service_account", "client_email": "a@b"}"#)?.message.contains("private_key is missing") == true)
        let garbled = String(pem.replacingOccurrences(of: "\n", with: "\\n").dropLast(60))
        #expect(failure(#"{"type": "service_account", "client_email": "a@b", "private_key": "\#(garbled)"}"#)?.message.contains("PEM") == true)
        do {
            _ = try ServiceAccountKey(contentsOfFile: "/nonexistent/key.json")
            Issue.record("a missing key file was read")
        } catch {
            #expect(error.kind == .credentials)
            #expect(error.message.contains("/nonexistent/key.json"))
        }
    }

    @Test("the key file comes from credentials_file, then GOOGLE_APPLICATION_CREDENTIALS; an emulator needs none; else the metadata server")
    func sourceOrder() throws {
        let path = try Support.writeKeyFile(tokenURI: nil)
        defer { unlink(path) }
        func source(_ environment: [String: String], file: String? = nil) throws -> GoogleCredentials {
            try GoogleCredentials.resolve(options: StoreOptions(environment: environment, credentialsFile: file), store: "gs://b")
        }
        let emulator = ["STORAGE_EMULATOR_HOST": "localhost:4443"]
        guard case .serviceAccount(_, let origin) = try source(emulator, file: path) else { Issue.record("credentials_file ignored"); return }
        #expect(origin == "credentials_file \(path)")
        guard case .serviceAccount(_, let fromVariable) = try source(emulator.merging(["GOOGLE_APPLICATION_CREDENTIALS": path]) { $1 }) else {
            Issue.record("GOOGLE_APPLICATION_CREDENTIALS ignored"); return
        }
        #expect(fromVariable == "GOOGLE_APPLICATION_CREDENTIALS \(path)")
        guard case .anonymous = try source(emulator) else { Issue.record("an emulator got credentials"); return }
        guard case .metadataServer(let host) = try source([:]), host == "metadata.google.internal" else { Issue.record("no metadata server"); return }
        guard case .metadataServer(let custom) = try source(["GCE_METADATA_HOST": "127.0.0.1:8080"]), custom == "127.0.0.1:8080" else {
            Issue.record("GCE_METADATA_HOST ignored"); return
        }
        // A named key file that cannot be read is an error, not a reason to try the next source.
        #expect(throws: StoreError.self) { try source(emulator, file: "/nonexistent/key.json") }
    }

    @Test("the JWT is exchanged for a token, cached until shortly before it expires, and fetched once for concurrent callers")
    func tokenExchangeAndCache() async throws {
        let server = try await Support.fakeAuth.value()
        let id = Support.testID()
        let path = try Support.writeKeyFile(tokenURI: "\(server.baseURL)/token/\(id)")
        defer { unlink(path) }
        let clock = GCSTestClock(1_700_000_000)
        let tokens = GoogleAccessTokens(
            credentials: .serviceAccount(try ServiceAccountKey(contentsOfFile: path), origin: "test"), client: HTTPClient(),
            retry: Support.noWait, store: "gs://b", now: { clock.now })

        let first = try await tokens.authorization()
        #expect(first == "Bearer fake-token-\(id)-1")
        var stats = try await Support.authStats(server, id: id)
        #expect(stats["token_requests"] as? Int == 1)
        let claims = try #require(stats["last_claims"] as? [String: Any])
        #expect(claims["iat"] as? Int == 1_700_000_000)
        #expect(claims["exp"] as? Int == 1_700_003_600)

        // Cached: just under 55 minutes later it is still the same token, without a request.
        clock.advance(3299)
        #expect(try await tokens.authorization() == first)
        #expect(await tokens.fetches == 1)
        // Within five minutes of expiry it is renewed.
        clock.advance(1)
        #expect(try await tokens.authorization() == "Bearer fake-token-\(id)-2")
        stats = try await Support.authStats(server, id: id)
        #expect((stats["last_claims"] as? [String: Any])?["iat"] as? Int == 1_700_003_300)

        // Many callers at once after expiry: one fetch.
        clock.advance(3600)
        let headers = try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<8 { group.addTask { try await tokens.authorization() } }
            return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
        }
        #expect(headers == ["Bearer fake-token-\(id)-3"])
        #expect(await tokens.fetches == 3)
        stats = try await Support.authStats(server, id: id)
        #expect(stats["token_requests"] as? Int == 3)
    }

    @Test("an assertion signed with the wrong key is refused, and the error holds no secret")
    func wrongKey() async throws {
        let server = try await Support.fakeAuth.value()
        let id = Support.testID()
        let path = try Support.writeKeyFile(keyFile: "other-key.pem", tokenURI: "\(server.baseURL)/token/\(id)")
        defer { unlink(path) }
        let tokens = GoogleAccessTokens(
            credentials: .serviceAccount(try ServiceAccountKey(contentsOfFile: path), origin: "test"), client: HTTPClient(),
            retry: Support.noWait, store: "gs://b")
        do {
            _ = try await tokens.authorization()
            Issue.record("a token was issued for the wrong key")
        } catch {
            #expect(error.kind == .unauthorized)
            #expect(error.code == "invalid_grant")
            #expect(error.status == 400)
            #expect(error.description.contains("Invalid JWT Signature."))
            #expect(error.description.contains("tern-test@tern-test-project.iam.gserviceaccount.com"))
            #expect(!error.description.contains("eyJ"))
            #expect(!error.description.contains("PRIVATE KEY"))
        }
        let stats = try await Support.authStats(server, id: id)
        #expect(stats["rejected"] as? Int == 1)
    }

    @Test("the metadata server's token is used when no key file is configured")
    func metadataServer() async throws {
        let server = try await Support.fakeAuth.value()
        let credentials = try GoogleCredentials.resolve(
            options: StoreOptions(environment: ["GCE_METADATA_HOST": "127.0.0.1:\(server.port)"]), store: "gs://b")
        let tokens = GoogleAccessTokens(credentials: credentials, client: HTTPClient(), retry: Support.noWait, store: "gs://b")
        let header = try #require(try await tokens.authorization())
        #expect(header.hasPrefix("Bearer metadata-token-"))
        #expect(try await tokens.authorization() == header)
    }

    @Test("with no source reachable the error says what was tried")
    func nothingReachable() async throws {
        // A port nothing listens on: the "metadata server" refuses the connection.
        let port = try TestServer.freePort()
        let store = try GCSStore(url: StoreURL(parsing: "gs://bucket/p"),
                                 options: StoreOptions(environment: ["GCE_METADATA_HOST": "127.0.0.1:\(port)"], retry: Support.noWait))
        do {
            _ = try await store.head("x")
            Issue.record("a request went out without credentials")
        } catch {
            #expect(error.kind == .credentials)
            #expect(error.message.contains("credentials_file"))
            #expect(error.message.contains("GOOGLE_APPLICATION_CREDENTIALS"))
            #expect(error.message.contains("STORAGE_EMULATOR_HOST"))
            #expect(error.message.contains("metadata server"))
        }
    }

    @Test("a GCS store sends the token, and renews it once after a 401")
    func storeSendsToken() async throws {
        let server = try await Support.fakeAuth.value()
        let id = Support.testID()
        let path = try Support.writeKeyFile(tokenURI: "\(server.baseURL)/token/\(id)")
        defer { unlink(path) }
        // The fake answers objects.get only for a token it issued and has not revoked.
        let store = try GCSStore(url: StoreURL(parsing: "gs://bucket/run"),
                                 options: StoreOptions(endpoint: server.baseURL, environment: [:], credentialsFile: path, retry: Support.noWait))
        let info = try #require(try await store.head("weights/a b"))
        #expect(info.key == "weights/a b")
        #expect(info.version == "7")
        #expect(await store.tokens.fetches == 1)

        try await Support.revokeTokens(server, id: id)
        #expect(try await store.head("weights/a b")?.version == "7")
        #expect(await store.tokens.fetches == 2)
        let stats = try await Support.authStats(server, id: id)
        #expect(stats["token_requests"] as? Int == 2)
    }
}
