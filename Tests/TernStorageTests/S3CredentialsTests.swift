import Foundation
import Testing
@testable import TernStorage
import TernTestSupport

/// The AWS credential chain (environment, shared credentials file, instance metadata) and the S3
/// endpoint, region and addressing rules. The metadata service is a local fake of ours
/// (Fixtures/s3/fake_imds.py), so those tests check Tern against our reading of the IMDSv2
/// documentation, not against EC2.
@Suite("AWS credentials and S3 endpoints")
struct S3CredentialsTests {
    typealias Support = S3TestSupport

    static let fileText = """
        # a comment
        ; another comment
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = default-secret-value
        region = eu-west-1

        [build]\r
        AWS_Access_Key_ID=AKIDBUILD\r
        aws_secret_access_key=build/secret+value==\r
        aws_session_token = build-session-token\r
        s3 =
            addressing_style = path

        [sso-only]
        sso_start_url = https://example.awsapps.com/start
        """

    /// Writes `text` as a credentials file in a fresh directory laid out as a home directory.
    static func home(_ text: String) throws -> String {
        let home = try Support.scratchDirectory()
        try FileManager.default.createDirectory(atPath: "\(home)/.aws", withIntermediateDirectories: true)
        try text.write(toFile: "\(home)/.aws/credentials", atomically: true, encoding: .utf8)
        return home
    }

    static func provider(_ environment: [String: String], file: String? = nil, profile: String? = nil) throws(StoreError) -> AWSCredentialsProvider {
        try AWSCredentialsProvider(options: StoreOptions(environment: environment, credentialsFile: file, profile: profile), store: "s3://b")
    }

    @Test("the shared credentials file: sections, comments, CRLF, case-insensitive keys, nested settings skipped")
    func fileParsing() throws {
        guard case .profiles(let profiles) = AWSSharedCredentialsFile.parse(Self.fileText) else {
            Issue.record("the file did not parse"); return
        }
        #expect(Set(profiles.keys) == ["default", "build", "sso-only"])
        #expect(profiles["default"]?["aws_access_key_id"] == "AKIDDEFAULT")
        #expect(profiles["build"]?["aws_access_key_id"] == "AKIDBUILD")
        #expect(profiles["build"]?["aws_secret_access_key"] == "build/secret+value==")
        #expect(profiles["build"]?["aws_session_token"] == "build-session-token")
        #expect(profiles["build"]?["addressing_style"] == nil)
        let secretLine = "[p]\naws_access_key_id = A\nthis line holds secret-material-xyz\n"
        guard case .malformed(let why) = AWSSharedCredentialsFile.parse(secretLine) else { Issue.record("accepted a bad line"); return }
        #expect(why == "line 3 is not `key = value`")
        #expect(AWSSharedCredentialsFile.parse("key = before-any-heading\n") == .malformed("line 1 sets a key before any [profile] heading"))
        #expect(AWSSharedCredentialsFile.read("/nonexistent/credentials") == .missing("not found"))
    }

    @Test("profile choice: options.profile, else AWS_PROFILE, else default; file: options, AWS_SHARED_CREDENTIALS_FILE, HOME")
    func profileChoice() async throws {
        let home = try Self.home(Self.fileText)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let path = "\(home)/.aws/credentials"

        let fromHome = try await Self.provider(["HOME": home]).credentials()
        #expect(fromHome.accessKeyID == "AKIDDEFAULT")
        #expect(fromHome.source == "shared credentials file \(path) (profile default)")
        #expect(fromHome.sessionToken == nil)

        let fromVariable = try await Self.provider(["HOME": home, "AWS_PROFILE": "build"]).credentials()
        #expect(fromVariable.accessKeyID == "AKIDBUILD")
        #expect(fromVariable.sessionToken == "build-session-token")

        let fromOption = try await Self.provider(["HOME": home, "AWS_PROFILE": "nope"], profile: "default").credentials()
        #expect(fromOption.accessKeyID == "AKIDDEFAULT")

        let elsewhere = try Self.home("[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n")
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        let otherPath = "\(elsewhere)/.aws/credentials"
        #expect(try await Self.provider(["HOME": home, "AWS_SHARED_CREDENTIALS_FILE": otherPath]).credentials().accessKeyID == "AKIDOTHER")
        #expect(try await Self.provider(["HOME": home, "AWS_SHARED_CREDENTIALS_FILE": path], file: otherPath).credentials().accessKeyID == "AKIDOTHER")
    }

    @Test("the environment comes first, unless the target names its own file or profile")
    func environmentFirst() async throws {
        let home = try Self.home(Self.fileText)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let environment = ["HOME": home, "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token"]
        let fromEnvironment = try await Self.provider(environment).credentials()
        #expect(fromEnvironment.accessKeyID == "AKIDENV")
        #expect(fromEnvironment.sessionToken == "env-token")
        #expect(fromEnvironment.source == "environment")
        #expect(try await Self.provider(environment, profile: "build").credentials().accessKeyID == "AKIDBUILD")
        #expect(try await Self.provider(environment, file: "\(home)/.aws/credentials").credentials().accessKeyID == "AKIDDEFAULT")
    }

    @Test("unusable sources fail with what was tried and why, and never the secret")
    func failures() throws {
        let home = try Self.home(Self.fileText)
        defer { try? FileManager.default.removeItem(atPath: home) }
        func failure(_ environment: [String: String], file: String? = nil, profile: String? = nil) -> StoreError? {
            do {
                _ = try Self.provider(environment, file: file, profile: profile)
                return nil
            } catch {
                #expect(error.kind == .credentials)
                for secret in ["default-secret-value", "build/secret+value==", "build-session-token", "half-secret"] {
                    #expect(!error.description.contains(secret))
                }
                return error
            }
        }
        #expect(failure(["AWS_SECRET_ACCESS_KEY": "half-secret"])?.message == "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        #expect(failure(["HOME": home, "AWS_PROFILE": "missing"])?.message.contains("has no profile missing (it has: build, default, sso-only)") == true)
        #expect(failure(["HOME": home], profile: "sso-only")?.message.contains("sso_* and credential_process profiles are not supported") == true)
        #expect(failure([:], file: "/nonexistent/credentials")?.message == "cannot read shared credentials file /nonexistent/credentials: not found")
        let everything = failure(["HOME": "/nonexistent-home", "AWS_EC2_METADATA_DISABLED": "true"])
        #expect(everything?.message == "no AWS credentials found; tried environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; "
            + "shared credentials file /nonexistent-home/.aws/credentials: not found; instance metadata: disabled by AWS_EC2_METADATA_DISABLED")
        let malformed = try Self.home("[default]\naws_secret_access_key = do-not-print-me\ngarbage without equals\n")
        defer { try? FileManager.default.removeItem(atPath: malformed) }
        let error = failure(["HOME": malformed])
        #expect(error?.message.contains("line 3 is not `key = value`") == true)
        #expect(error?.description.contains("do-not-print-me") == false)
    }

    @Test("printing credentials shows the key id and source, never the secret or the session token")
    func redaction() {
        let credentials = AWSCredentials(accessKeyID: "AKIDPRINT", secretAccessKey: "print-secret", sessionToken: "print-token", source: "environment")
        var dumped = ""
        dump(credentials, to: &dumped)
        for text in [credentials.description, credentials.debugDescription, "\(credentials)", String(reflecting: credentials), dumped] {
            #expect(text.contains("AKIDPRINT"))
            #expect(!text.contains("print-secret"))
            #expect(!text.contains("print-token"))
        }
    }

    // MARK: Instance metadata (IMDSv2) against the fake

    /// A clock the test moves by hand.
    final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var current: Date
        init(_ date: Date) { current = date }
        var now: Date { lock.withLock { current } }
        func set(_ date: Date) { lock.withLock { current = date } }
    }

    static func metadataProvider(_ server: TestServer, id: String, clock: ManualClock) throws(StoreError) -> AWSCredentialsProvider {
        try AWSCredentialsProvider(
            options: StoreOptions(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "\(server.baseURL)/t/\(id)"], retry: Support.noWait),
            store: "s3://b", now: { clock.now })
    }

    @Test("IMDSv2: a session token, then the role, then its credentials; cached until five minutes before expiry")
    func instanceMetadata() async throws {
        let server = try await Support.fakeIMDS.value()
        let id = Support.testID()
        let expiration = try #require(ISO8601DateFormatter().date(from: "2030-01-01T00:00:00Z"))
        try await Support.configureIMDS(server, id: id, ["expiration": "2030-01-01T00:00:00Z"])
        let clock = ManualClock(expiration.addingTimeInterval(-3600))
        let provider = try Self.metadataProvider(server, id: id, clock: clock)
        #expect(provider.sourceDescription == "instance metadata at \(server.baseURL)/t/\(id)")

        let first = try await provider.credentials()
        #expect(first.accessKeyID == "ASIAFAKE1")
        #expect(first.sessionToken == "imds-session-\(id)-1")
        #expect(first.expiration == expiration)
        #expect(first.source == "instance metadata (role tern-test-role)")
        #expect(!first.description.contains("imds-secret"))

        // Cached: no new request while the credentials have more than five minutes left.
        clock.set(expiration.addingTimeInterval(-301))
        #expect(try await provider.credentials().accessKeyID == "ASIAFAKE1")
        var stats = try await Support.imdsStats(server, id: id)
        #expect(stats == ["tokens": 1, "credentials": 1, "refused": 0])

        // Inside the five-minute margin they are renewed (with a new IMDSv2 token).
        clock.set(expiration.addingTimeInterval(-299))
        #expect(try await provider.credentials().accessKeyID == "ASIAFAKE2")
        stats = try await Support.imdsStats(server, id: id)
        #expect(stats == ["tokens": 2, "credentials": 2, "refused": 0])

        // A renewal that fails keeps credentials that have not expired yet, and fails once they have.
        try await Support.configureIMDS(server, id: id, ["mode": "failing"])
        clock.set(expiration.addingTimeInterval(-100))
        #expect(try await provider.credentials().accessKeyID == "ASIAFAKE2")
        clock.set(expiration.addingTimeInterval(1))
        do {
            _ = try await provider.credentials()
            Issue.record("expired credentials were used")
        } catch {
            #expect(error.kind == .credentials)
            #expect(error.message.contains("are not available (Code AssumeRoleUnauthorizedAccess)"))
        }
    }

    @Test("concurrent callers share one metadata fetch")
    func concurrentFetch() async throws {
        let server = try await Support.fakeIMDS.value()
        let id = Support.testID()
        let provider = try Self.metadataProvider(server, id: id, clock: ManualClock(Date(timeIntervalSince1970: 1_800_000_000)))
        let keys = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try await provider.credentials().accessKeyID } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(keys) == ["ASIAFAKE1"])
        #expect(try await Support.imdsStats(server, id: id)["credentials"] == 1)
    }

    @Test("an instance without a role, and no metadata service at all, fail naming every source tried")
    func metadataFailures() async throws {
        let server = try await Support.fakeIMDS.value()
        let id = Support.testID()
        try await Support.configureIMDS(server, id: id, ["mode": "no-role"])
        let clock = ManualClock(Date())
        do {
            _ = try await Self.metadataProvider(server, id: id, clock: clock).credentials()
            Issue.record("credentials without a role")
        } catch {
            #expect(error.kind == .credentials)
            #expect(error.message.hasPrefix("no AWS credentials found; tried environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; shared credentials file: HOME is not set; instance metadata at "))
            #expect(error.message.hasSuffix("this instance has no IAM role"))
        }

        // A port nothing listens on: refused at once, reported, not hung.
        let closed = try TestServer.freePort()
        let provider = try AWSCredentialsProvider(
            options: StoreOptions(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(closed)"], retry: Support.noWait),
            store: "s3://b")
        do {
            _ = try await provider.credentials()
            Issue.record("credentials from nowhere")
        } catch {
            #expect(error.message.contains("instance metadata at http://127.0.0.1:\(closed): asking for a session token failed"))
        }
    }

    // MARK: Endpoints, regions, addressing

    static func store(_ url: String, endpoint: String? = nil, region: String? = nil, _ environment: [String: String] = [:]) throws -> S3Store {
        var variables = environment
        variables["AWS_ACCESS_KEY_ID"] = "AKIDX"
        variables["AWS_SECRET_ACCESS_KEY"] = "x"
        return try S3Store(url: StoreURL(parsing: url), options: StoreOptions(endpoint: endpoint, environment: variables, region: region))
    }

    @Test("region and endpoint precedence; virtual-host style on AWS, path style for custom endpoints and dotted buckets")
    func endpoints() throws {
        let aws = try Self.store("s3://bucket/p")
        #expect(aws.region == "us-east-1")
        #expect(aws.endpoint.description == "https://s3.us-east-1.amazonaws.com/")
        #expect(aws.usesPathStyle == false)

        let regional = try Self.store("s3://bucket", region: "eu-west-3", ["AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-west-2"])
        #expect(regional.region == "eu-west-3")
        #expect(try Self.store("s3://bucket", ["AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-west-2"]).region == "ap-south-1")
        #expect(try Self.store("s3://bucket", ["AWS_DEFAULT_REGION": "us-west-2"]).endpoint.host == "s3.us-west-2.amazonaws.com")

        #expect(try Self.store("s3://my.dotted.bucket").usesPathStyle)
        #expect(try Self.store("s3://under_score").usesPathStyle)

        let custom = try Self.store("s3://bucket", ["AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://minio:9000/"])
        #expect(custom.endpoint.description == "http://minio:9000/")
        #expect(custom.usesPathStyle)
        #expect(try Self.store("s3://bucket", endpoint: "https://r2.example", ["AWS_ENDPOINT_URL_S3": "http://minio:9000"]).endpoint.host == "r2.example")
        #expect(try Self.store("s3://bucket", ["AWS_ENDPOINT_URL": "http://general:1"]).endpoint.host == "general")
        #expect(try Self.store("s3://bucket", endpoint: "https://r2.example", ["AWS_S3_FORCE_PATH_STYLE": "false"]).usesPathStyle == false)
        #expect(try Self.store("s3://bucket", ["AWS_S3_FORCE_PATH_STYLE": "true"]).usesPathStyle)
        #expect(try Self.store("s3://a.b", endpoint: "https://r2.example", ["AWS_S3_FORCE_PATH_STYLE": "false"]).usesPathStyle)

        #expect(throws: StoreError.self) { try Self.store("s3://bucket", endpoint: "minio:9000") }
        #expect(throws: StoreError.self) { try Self.store("s3://bucket", ["AWS_S3_FORCE_PATH_STYLE": "maybe"]) }
        #expect(throws: StoreError.self) { try Self.store("s3://bucket", region: "us-east-1/../x") }
        #expect(throws: StoreError.self) { try S3Store(url: StoreURL(parsing: "gs://bucket"), options: StoreOptions(environment: [:])) }
    }

    @Test("requests: virtual-host style puts the bucket in the host, path style in the path; keys are encoded once")
    func requestShapes() throws {
        let credentials = AWSCredentials(accessKeyID: "AKIDX", secretAccessKey: "x")
        let virtual = try Self.store("s3://bucket/pre fix", region: "eu-west-1")
        let request = virtual.request("GET", "pre fix/a b/ü+.bin", credentials: credentials)
        #expect(request.url.host == "bucket.s3.eu-west-1.amazonaws.com")
        #expect(request.url.path == "/pre%20fix/a%20b/%C3%BC%2B.bin")
        #expect(request.headers["Authorization"]?.contains("/eu-west-1/s3/aws4_request") == true)
        #expect(request.headers["X-Amz-Content-SHA256"] == SigV4.emptyPayloadHash)

        let path = try Self.store("s3://bucket", endpoint: "http://127.0.0.1:9000/base")
        let listing = path.request("GET", nil, query: [("list-type", "2"), ("prefix", "a/b")], credentials: credentials)
        #expect(listing.url.host == "127.0.0.1")
        #expect(listing.url.path == "/base/bucket")
        #expect(listing.url.query == "list-type=2&prefix=a%2Fb")
        #expect(listing.headers["Host"] == "127.0.0.1:9000")

        let unsigned = path.request("PUT", "k", payload: .unsigned(.bytes([1, 2])), credentials: credentials)
        #expect(unsigned.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD")
        #expect(S3Store.payload(.bytes([1, 2])).isHashed)
        #expect(!S3Store.payload(.file(path: "/x", offset: 0, length: 10)).isHashed)
        #expect(!S3Store.payload(.bytes([UInt8](repeating: 0, count: (1 << 20) + 1))).isHashed)

        #expect(throws: StoreError.self) { try path.objectName("a//b") }
        #expect(throws: StoreError.self) { try path.objectName("../x") }
        #expect(throws: StoreError.self) { try path.objectName(String(repeating: "k", count: 1025)) }
    }
}

extension S3Store.Payload {
    var isHashed: Bool {
        if case .hashed = self { return true }
        return false
    }
}
