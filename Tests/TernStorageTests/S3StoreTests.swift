import Foundation
import Testing
import TernCrypto
import TernStorage
import TernTestSupport

/// The S3 store against moto (a third-party emulator) with signature checking on: every request in
/// these tests is signed by Tern and refused by moto if the signature is wrong. What moto does not
/// model (it does not check the CRC32C sent with a part or a put against the bytes; it accepts
/// UNSIGNED-PAYLOAD over plain HTTP) is in docs/stores-s3.md.
@Suite("S3 store on moto")
struct S3StoreTests {
    typealias Support = S3TestSupport

    @Test("put from bytes and from a file, head, get: sizes, CRC32C and ETag agree")
    func roundTrip() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "run/1")
        let small = Array("hello, checkpoint".utf8)
        let put = try await store.put("manifests/a.json", bytes: small)
        #expect(put.size == Int64(small.count))
        #expect(put.crc32c == CRC32C.checksum(small))
        let head = try #require(try await store.head("manifests/a.json"))
        #expect(head.size == Int64(small.count))
        #expect(head.crc32c == CRC32C.checksum(small))
        #expect(head.version == put.version)
        #expect(head.version != nil)
        #expect(try await store.getBytes("manifests/a.json") == small)

        // A file body larger than the hashed-body limit goes as UNSIGNED-PAYLOAD, streamed from the file.
        let large = Support.bytes(3 << 20, seed: 1)
        let path = try Support.scratchFile(large)
        defer { unlink(path) }
        let progress = TransferProgress(total: Int64(large.count))
        let fromFile = try await store.put("data/shard-0", from: try .file(path), options: PutOptions(progress: progress))
        #expect(progress.completed == Int64(large.count))
        #expect(fromFile.crc32c == CRC32C.checksum(large))
        #expect(try await store.head("data/shard-0")?.crc32c == CRC32C.checksum(large))
        #expect(try await store.getBytes("data/shard-0") == large)
        #expect(try await store.head("data/missing") == nil)

        // An empty object.
        try await store.put("data/empty", bytes: [])
        #expect(try await store.getBytes("data/empty") == [])
        #expect(try await store.head("data/empty")?.size == 0)
    }

    @Test("ranged gets return exactly the range; out-of-range and missing objects fail clearly")
    func rangedGet() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(100_000, seed: 2)
        try await store.put("blob", bytes: bytes)
        #expect(try await store.getBytes("blob", range: 10..<20) == Array(bytes[10..<20]))
        #expect(try await store.getBytes("blob", range: 99_000..<100_000) == Array(bytes[99_000...]))
        #expect(try await store.getBytes("blob", range: 5..<5) == [])
        await #expect(throws: StoreError.self) { try await store.getBytes("blob", range: 99_999..<100_001) }
        do {
            _ = try await store.getBytes("nothing-here")
            Issue.record("a missing object was read")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("list pages through continuation tokens, decodes keys, stays inside the prefix")
    func listPagination() async throws {
        let (fresh, bucket, moto) = try await Support.freshStore(prefix: "ckpt")
        var store = fresh
        store.listPageSize = 3
        let keys = (0..<10).map { "step-1/file-\($0)" } + ["step-1/with space+plus.bin", "step-1/ünïcödé.bin", "step-2/other"]
        for key in keys { try await store.put(key, bytes: Array(key.utf8)) }
        // Outside the store's prefix, and a sibling prefix that shares its first letters.
        _ = try await Support.s3Request(moto, method: "PUT", path: "/\(bucket)/ckpt-other/x", body: [1])
        _ = try await Support.s3Request(moto, method: "PUT", path: "/\(bucket)/elsewhere/y", body: [2])

        let step1 = try await store.list(prefix: "step-1/")
        #expect(step1.map(\.key) == keys.filter { $0.hasPrefix("step-1/") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(step1.allSatisfy { $0.version != nil })
        #expect(step1.first { $0.key == "step-1/with space+plus.bin" }?.size == Int64("step-1/with space+plus.bin".utf8.count))
        let all = try await store.list(prefix: "")
        #expect(all.count == keys.count)
        #expect(!all.contains { $0.key.contains("other/x") || $0.key.contains("elsewhere") })
        #expect(try await store.getBytes("step-1/ünïcödé.bin") == Array("step-1/ünïcödé.bin".utf8))
    }

    @Test("delete removes the object; deleting a missing object is not an error")
    func delete() async throws {
        let (store, _, _) = try await Support.freshStore()
        try await store.put("a", bytes: [1, 2, 3])
        try await store.delete("a")
        #expect(try await store.head("a") == nil)
        try await store.delete("a")
    }

    @Test("server-side copy: same bytes, same CRC32C, its own ETag")
    func copy() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "p")
        let bytes = Support.bytes(200_000, seed: 3)
        try await store.put("source", bytes: bytes)
        let copied = try await store.copy(from: "source", to: "dir/copy")
        #expect(copied.size == Int64(bytes.count))
        #expect(copied.crc32c == CRC32C.checksum(bytes))
        #expect(try await store.getBytes("dir/copy") == bytes)
        do {
            _ = try await store.copy(from: "missing", to: "x")
            Issue.record("copied a missing object")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("a create-only put refuses to replace an object (If-None-Match: *)")
    func createOnly() async throws {
        let (store, _, _) = try await Support.freshStore()
        try await store.put("_TERN_COMMITTED", bytes: Array("first".utf8), createOnly: true)
        do {
            try await store.put("_TERN_COMMITTED", bytes: Array("second".utf8), createOnly: true)
            Issue.record("a create-only put replaced an object")
        } catch {
            #expect(error.kind == .alreadyExists)
            #expect(error.status == 412)
        }
        #expect(try await store.getBytes("_TERN_COMMITTED") == Array("first".utf8))
    }

    @Test("a wrong secret is refused with SignatureDoesNotMatch, and the secret appears in no error")
    func wrongSecret() async throws {
        let moto = try await Support.moto.value()
        let bucket = "tern-\(UUID().uuidString.lowercased().prefix(18))"
        try await Support.createBucket(bucket, on: moto)
        let wrong = "wrong-secret-\(UUID().uuidString)"
        let store = try S3Store(url: StoreURL(parsing: "s3://\(bucket)"),
                                options: Support.options(moto, environment: ["AWS_SECRET_ACCESS_KEY": wrong]))
        for operation in ["put", "list", "get"] {
            do {
                switch operation {
                case "put": try await store.put("k", bytes: [1])
                case "list": _ = try await store.list(prefix: "")
                default: _ = try await store.getBytes("k")
                }
                Issue.record("\(operation) succeeded with a wrong secret")
            } catch {
                #expect(error.kind == .unauthorized, "\(operation): \(error)")
                if operation != "get" { #expect(error.code == "SignatureDoesNotMatch", "\(operation): \(error)") }
                #expect(!error.description.contains(wrong))
                #expect(!"\(error)".contains(wrong))
                #expect(!String(reflecting: error).contains(wrong))
            }
        }
        let credentials = try await store.credentials.credentials()
        #expect(!credentials.description.contains(wrong))
    }

    @Test("an object replaced behind Tern's back shows a different version (ETag)")
    func replacedBehindTheBack() async throws {
        let (store, bucket, moto) = try await Support.freshStore(prefix: "run")
        let first = try await store.put("weights.bin", bytes: Support.bytes(1000, seed: 4))
        let pinned = try #require(first.version)
        #expect(try await store.head("weights.bin")?.version == pinned)
        let other = Support.bytes(1000, seed: 5)
        let response = try await Support.s3Request(moto, method: "PUT", path: "/\(bucket)/run/weights.bin", body: other)
        #expect(response.isSuccess)
        let now = try #require(try await store.head("weights.bin"))
        #expect(now.version != pinned)
        #expect(now.crc32c == nil)  // written without a checksum: S3 keeps none to compare
        #expect(try await store.getBytes("weights.bin") == other)
    }

    @Test("a presigned URL carries the X-Amz-* parameters and no secret (moto cannot check presigned URLs)")
    func presignedURL() async throws {
        // moto 5.2.1 answers every presigned request with HTTP 500 when signature checking is on (it
        // looks for an Authorization header), so the signature itself is checked by the AWS test suite
        // vectors (S3SigV4Tests), and here only what the store adds: host, path, scope, expiry.
        let (store, bucket, moto) = try await Support.freshStore(prefix: "shared")
        let link = try await store.presignedURL(for: "dir/file name.txt", expires: .seconds(600))
        let url = try #require(HTTPURL(string: link))
        #expect(url.path == "/\(bucket)/shared/dir/file%20name.txt")
        #expect("http://\(url.hostHeader)" == moto.endpoint)
        let query = Dictionary(uniqueKeysWithValues: url.query.split(separator: "&").map { item in
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            return (pair[0], PercentEncoding.decode(pair[1]) ?? "")
        })
        #expect(query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256")
        #expect(query["X-Amz-Credential"]?.hasPrefix("\(moto.accessKeyID)/") == true)
        #expect(query["X-Amz-Credential"]?.hasSuffix("/us-east-1/s3/aws4_request") == true)
        #expect(query["X-Amz-Expires"] == "600")
        #expect(query["X-Amz-SignedHeaders"] == "host")
        #expect(query["X-Amz-Signature"]?.count == 64)
        #expect(!link.contains(moto.secretAccessKey))
        await #expect(throws: StoreError.self) { try await store.presignedURL(for: "x", expires: .seconds(8 * 86_400)) }
    }

    @Test("a request changed after signing is refused: moto really checks what Tern signs")
    func tamperedRequest() async throws {
        let (_, bucket, moto) = try await Support.freshStore()
        let base = try #require(HTTPURL(string: moto.endpoint))
        let signed = SigV4(region: "us-east-1", service: "s3").sign(
            SigV4.Request(method: "GET", path: "/\(bucket)", query: [("list-type", "2"), ("prefix", "a/")],
                          headers: HTTPHeaders([("Host", base.hostHeader)])),
            credentials: moto.credentials, date: Date(), payloadHash: SigV4.emptyPayloadHash)
        func send(_ query: String) async throws -> Int {
            let url = HTTPURL(secure: false, host: base.host, port: base.port, path: signed.path, query: query)
            return try await HTTPClient().execute(HTTPRequest(method: "GET", url: url, headers: signed.headers)).status
        }
        #expect(try await send(signed.query) == 200)
        #expect(try await send(signed.query.replacingOccurrences(of: "prefix=a%2F", with: "prefix=b%2F")) == 403)
    }

    // MARK: Multipart

    /// A ~20 MiB file in 5 MiB parts (S3's minimum): 4 full parts and a short last one.
    static let largeSize = 20 * (1 << 20) + 12_345
    static let partSize: Int64 = 5 << 20

    @Test("a multipart upload in parallel parts: checkpoints after each part, full-object CRC32C verified")
    func multipart() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "big")
        let bytes = Support.bytes(Self.largeSize, seed: 6)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let crc = CRC32C.checksum(bytes)
        let checkpoints = UploadCheckpoints()
        let info = try await store.putLarge("model.safetensors", from: try .file(path), options: PutOptions(crc32c: crc),
                                            partSize: Self.partSize, resuming: nil) { try checkpoints.record($0) }
        #expect(info.size == Int64(bytes.count))
        #expect(info.crc32c == crc)
        // Started (no parts), then one state per part.
        let states = checkpoints.all
        #expect(states.count == 6)
        #expect(states.first?.parts.isEmpty == true)
        #expect(states.map(\.parts.count) == [0, 1, 2, 3, 4, 5])
        #expect(states.last?.parts.map(\.number) == [1, 2, 3, 4, 5])
        #expect(Set(states.map(\.uploadID)).count == 1)
        let head = try #require(try await store.head("model.safetensors"))
        #expect(head.crc32c == crc)
        #expect(head.version == info.version)
        #expect(try await store.getBytes("model.safetensors") == bytes)
        #expect(try await store.multipartUploads().isEmpty)
    }

    @Test("a crash after part 2, resumed from the saved state, sends only the missing parts")
    func crashAndResume() async throws {
        var store = try await Support.freshStore(prefix: "resume").store
        store.maxParallelParts = 1  // so exactly parts 1 and 2 are on S3 when the checkpoint fails
        let bytes = Support.bytes(Self.largeSize, seed: 7)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        let crashing = UploadCheckpoints(crashAfterParts: 2)
        do {
            try await store.putLarge("shard.bin", from: source, options: PutOptions(), partSize: Self.partSize, resuming: nil) {
                try crashing.record($0)
            }
            Issue.record("the simulated crash did not stop the upload")
        } catch {
            #expect(error.kind == .io)
            #expect(error.message.contains("simulated crash"))
        }
        let saved = try #require(crashing.last)
        #expect(saved.parts.map(\.number) == [1, 2])
        #expect(try await store.head("shard.bin") == nil)
        #expect(try await store.multipartUploads(prefix: "shard").map(\.uploadID) == [saved.uploadID])

        // Resume with a fresh store value, as a new process would.
        var resumedStore = try S3Store(url: store.url, options: Support.options(try await Support.moto.value()))
        resumedStore.maxParallelParts = 4
        let progress = TransferProgress(total: source.length)
        let checkpoints = UploadCheckpoints()
        let info = try await resumedStore.putLarge("shard.bin", from: source, options: PutOptions(progress: progress),
                                                   partSize: Self.partSize, resuming: saved) { try checkpoints.record($0) }
        #expect(progress.completed == source.length - 2 * Self.partSize)
        #expect(checkpoints.all.allSatisfy { $0.uploadID == saved.uploadID })
        #expect(checkpoints.last?.parts.map(\.number) == [1, 2, 3, 4, 5])
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await store.getBytes("shard.bin") == bytes)
        #expect(try await store.multipartUploads().isEmpty)
    }

    @Test("a crash with parts in flight: parts S3 holds but the checkpoint lacks are sent again, the object is right")
    func crashWithPartsInFlight() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(Self.largeSize, seed: 8)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        let crashing = UploadCheckpoints(crashAfterParts: 1)
        await #expect(throws: StoreError.self) {
            try await store.putLarge("f", from: source, options: PutOptions(), partSize: Self.partSize, resuming: nil) { try crashing.record($0) }
        }
        let saved = try #require(crashing.last)
        #expect(saved.parts.count == 1)
        let info = try await store.putLarge("f", from: source, options: PutOptions(), partSize: Self.partSize, resuming: saved) { _ in }
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await store.getBytes("f") == bytes)
    }

    @Test("resuming an upload that is gone starts a new one")
    func resumeGoneUpload() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(11 << 20, seed: 9)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        let crashing = UploadCheckpoints(crashAfterParts: 1)
        await #expect(throws: StoreError.self) {
            try await store.putLarge("g", from: source, options: PutOptions(), partSize: Self.partSize, resuming: nil) { try crashing.record($0) }
        }
        let saved = try #require(crashing.last)
        try await store.abortLarge(saved)
        let checkpoints = UploadCheckpoints()
        let info = try await store.putLarge("g", from: source, options: PutOptions(), partSize: Self.partSize, resuming: saved) {
            try checkpoints.record($0)
        }
        #expect(checkpoints.all.first?.uploadID != saved.uploadID)
        #expect(checkpoints.all.first?.parts.isEmpty == true)
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await store.getBytes("g") == bytes)
    }

    @Test("abort leaves no upload behind; abortLeftoverUploads removes only old ones")
    func abort() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "ab")
        let bytes = Support.bytes(11 << 20, seed: 10)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        var saved: [LargeUpload] = []
        for key in ["one", "two"] {
            let crashing = UploadCheckpoints(crashAfterParts: 1)
            await #expect(throws: StoreError.self) {
                try await store.putLarge(key, from: source, options: PutOptions(), partSize: Self.partSize, resuming: nil) { try crashing.record($0) }
            }
            saved.append(try #require(crashing.last))
        }
        #expect(Set(try await store.multipartUploads().map(\.key)) == ["one", "two"])
        try await store.abortLarge(saved[0])
        #expect(try await store.multipartUploads().map(\.uploadID) == [saved[1].uploadID])
        try await store.abortLarge(saved[0])  // aborting twice is fine

        let uploads = try await store.multipartUploads()
        #expect(uploads.allSatisfy { $0.initiated != nil })
        let oldest = try #require(uploads.compactMap(\.initiated).min())
        #expect(try await store.abortLeftoverUploads(olderThan: oldest.addingTimeInterval(-3600)).isEmpty)
        #expect(try await store.multipartUploads().count == 1)
        let aborted = try await store.abortLeftoverUploads(olderThan: Date().addingTimeInterval(3600))
        #expect(aborted.map(\.uploadID) == [saved[1].uploadID])
        #expect(try await store.multipartUploads().isEmpty)
        #expect(try await store.head("two") == nil)
    }

    @Test("a source whose CRC32C is not the one given fails with an integrity error and aborts the upload")
    func multipartIntegrity() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(11 << 20, seed: 11)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        do {
            try await store.putLarge("bad", from: try .file(path), options: PutOptions(crc32c: CRC32C.checksum(bytes) ^ 1),
                                     partSize: Self.partSize, resuming: nil) { _ in }
            Issue.record("a wrong CRC32C was accepted")
        } catch {
            #expect(error.kind == .integrity)
        }
        #expect(try await store.head("bad") == nil)
        #expect(try await store.multipartUploads().isEmpty)
    }

    @Test("create-only large puts: refused up front when the object exists, and at Complete when it appeared meanwhile")
    func multipartCreateOnly() async throws {
        let (store, bucket, moto) = try await Support.freshStore()
        let bytes = Support.bytes(11 << 20, seed: 12)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        try await store.put("taken", bytes: [1])
        do {
            try await store.putLarge("taken", from: source, options: PutOptions(createOnly: true), partSize: Self.partSize, resuming: nil) { _ in }
            Issue.record("a create-only large put replaced an object")
        } catch {
            #expect(error.kind == .alreadyExists)
        }

        // The object appears while the upload is interrupted; Complete's If-None-Match catches it.
        let crashing = UploadCheckpoints(crashAfterParts: 1)
        await #expect(throws: StoreError.self) {
            try await store.putLarge("race", from: source, options: PutOptions(createOnly: true), partSize: Self.partSize, resuming: nil) {
                try crashing.record($0)
            }
        }
        _ = try await Support.s3Request(moto, method: "PUT", path: "/\(bucket)/race", body: [9, 9])
        let saved = try #require(crashing.last)
        do {
            try await store.putLarge("race", from: source, options: PutOptions(createOnly: true), partSize: Self.partSize,
                                     resuming: saved) { _ in }
            Issue.record("Complete replaced an object that appeared meanwhile")
        } catch {
            #expect(error.kind == .alreadyExists)
            #expect(error.status == 412)
        }
        #expect(try await store.getBytes("race") == [9, 9])
        #expect(try await store.multipartUploads().isEmpty)
    }

    @Test("an empty source is a one-part upload of nothing")
    func multipartEmpty() async throws {
        let (store, _, _) = try await Support.freshStore()
        let info = try await store.putLarge("empty", from: .bytes([]), options: PutOptions(), partSize: Self.partSize, resuming: nil) { _ in }
        #expect(info.size == 0)
        #expect(info.crc32c == 0)
        #expect(try await store.getBytes("empty") == [])
    }

    @Test("the part size grows so an object never needs more than 10,000 parts")
    func partSizePolicy() {
        #expect(LargeUpload.partSize(for: 1 << 30) == 64 << 20)
        #expect(LargeUpload.partSize(for: 10_000 * (64 << 20)) == 64 << 20)
        #expect(LargeUpload.partSize(for: 10_000 * (64 << 20) + 1) == 128 << 20)
        #expect(LargeUpload.partSize(for: 5 << 40) == 1 << 30)
    }
}
