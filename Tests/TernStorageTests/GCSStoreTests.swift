import Foundation
import Testing
import TernCrypto
import TernStorage
import TernTestSupport

/// The GCS store against a real fake-gcs-server (JSON API, in memory), one bucket per test.
@Suite("GCS store against fake-gcs-server")
struct GCSStoreTests {
    typealias Support = GCSTestSupport

    @Test("put, head, get, list and delete round-trip")
    func roundTrip() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "run-1")
        let bytes = Support.bytes(10_000, seed: 1)
        let put = try await store.put("step-10/model.bin", bytes: bytes)
        #expect(put.key == "step-10/model.bin")
        #expect(put.size == 10_000)
        #expect(put.crc32c == CRC32C.checksum(bytes))
        #expect(put.version != nil)

        let head = try #require(try await store.head("step-10/model.bin"))
        #expect(head == put)
        #expect(try await store.getBytes("step-10/model.bin") == bytes)
        #expect(try await store.list(prefix: "step-10/").map(\.key) == ["step-10/model.bin"])

        try await store.delete("step-10/model.bin")
        #expect(try await store.head("step-10/model.bin") == nil)
        // Deleting what is not there is not an error.
        try await store.delete("step-10/model.bin")
        do {
            _ = try await store.getBytes("step-10/model.bin")
            Issue.record("a deleted object was read")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("a put streams a file range, between the multipart framing")
    func fileRangePut() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(300_000, seed: 2)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let progress = TransferProgress(total: 200_000)
        let info = try await store.put("slice.bin", from: .file(path: path, offset: 50_000, length: 200_000),
                                       options: PutOptions(progress: progress))
        #expect(info.size == 200_000)
        #expect(info.crc32c == CRC32C.checksum(Array(bytes[50_000..<250_000])))
        #expect(try await store.getBytes("slice.bin") == Array(bytes[50_000..<250_000]))
        #expect(progress.completed == 200_000)
    }

    @Test("list follows page tokens and stays inside the store's prefix")
    func listPagination() async throws {
        var (store, bucket, server) = try await Support.freshStore(prefix: "p")
        store.listPageSize = 2
        for index in [4, 0, 6, 2, 5, 1, 3] {
            try await store.put("ckpt/file-\(index)", bytes: [UInt8(index)])
        }
        try await store.put("other", bytes: [9])
        // Beside the prefix, not under it: "p2/…" must not show up in gs://bucket/p.
        try await Support.uploadBehindTheBack([1], bucket: bucket, name: "p2/ckpt/file-9", on: server)

        let listed = try await store.list(prefix: "ckpt/")
        #expect(listed.map(\.key) == (0...6).map { "ckpt/file-\($0)" })
        #expect(listed.map(\.size) == Array(repeating: 1, count: 7))
        #expect(listed.allSatisfy { $0.version != nil && $0.crc32c != nil })
        #expect(try await store.list(prefix: "").map(\.key) == (0...6).map { "ckpt/file-\($0)" } + ["other"])
        #expect(try await store.list(prefix: "nothing/").isEmpty)
    }

    @Test("a create-only put refuses to overwrite")
    func createOnly() async throws {
        let (store, _, _) = try await Support.freshStore()
        let first = try await store.put("_TERN_COMMITTED", bytes: Array("manifest-a".utf8), createOnly: true)
        do {
            try await store.put("_TERN_COMMITTED", bytes: Array("manifest-b".utf8), createOnly: true)
            Issue.record("the second create-only put succeeded")
        } catch {
            #expect(error.kind == .alreadyExists)
            #expect(error.status == 412)
        }
        #expect(try await store.getBytes("_TERN_COMMITTED") == Array("manifest-a".utf8))
        #expect(try await store.head("_TERN_COMMITTED")?.version == first.version)
    }

    @Test("ranged gets return exactly the range, and refuse one past the end")
    func rangedGet() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(1000, seed: 3)
        try await store.put("blob", bytes: bytes)
        #expect(try await store.getBytes("blob", range: 5..<12) == Array(bytes[5..<12]))
        #expect(try await store.getBytes("blob", range: 999..<1000) == [bytes[999]])
        #expect(try await store.getBytes("blob", range: 10..<10) == [])
        do {
            _ = try await store.getBytes("blob", range: 990..<1001)
            Issue.record("a range past the end was read")
        } catch {
            #expect(error.kind == .rejected)
        }
        try await store.put("empty", bytes: [])
        #expect(try await store.getBytes("empty") == [])
    }

    @Test("copy is a server-side rewrite")
    func copy() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "a/b")
        let bytes = Support.bytes(5000, seed: 4)
        let source = try await store.put("src", bytes: bytes)
        let copied = try await store.copy(from: "src", to: "dir/dst")
        #expect(copied.key == "dir/dst")
        #expect(copied.size == 5000)
        #expect(copied.crc32c == source.crc32c)
        #expect(try await store.getBytes("dir/dst") == bytes)
        do {
            try await store.copy(from: "missing", to: "x")
            Issue.record("copying a missing object succeeded")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("an object replaced behind Tern's back shows a new generation")
    func replacedObject() async throws {
        let (store, bucket, server) = try await Support.freshStore(prefix: "run")
        let before = try await store.put("weights", bytes: Array("first".utf8))
        try await Support.uploadBehindTheBack(Array("second".utf8), bucket: bucket, name: "run/weights", on: server)
        let after = try #require(try await store.head("weights"))
        #expect(after.version != before.version)
        #expect(after.crc32c == CRC32C.checksum(Array("second".utf8)))
        #expect(try await store.getBytes("weights") == Array("second".utf8))
    }

    @Test("names are percent-encoded, slashes included")
    func awkwardNames() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "pre fix")
        let key = "dir/a b+c%d?e#f&g=é.bin"
        try await store.put(key, bytes: [1, 2, 3])
        #expect(try await store.getBytes(key) == [1, 2, 3])
        #expect(try await store.list(prefix: "dir/").map(\.key) == [key])
        let copied = try await store.copy(from: key, to: "dir/ü/copy")
        #expect(copied.key == "dir/ü/copy")
        try await store.delete(key)
        #expect(try await store.head(key) == nil)
        do {
            _ = try await store.head("a//b")
            Issue.record("a key with an empty segment was accepted")
        } catch {
            #expect(error.kind == .rejected)
        }
    }

    @Test("a put whose bytes do not match the caller's CRC32C is refused and leaves no object")
    func putIntegrity() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(100, seed: 5)
        // fake-gcs-server does not check the metadata's CRC32C (GCS does); Tern compares what it reports.
        do {
            try await store.put("bad", from: .bytes(bytes), options: PutOptions(crc32c: CRC32C.checksum(bytes) ^ 1))
            Issue.record("a put with a wrong CRC32C succeeded")
        } catch {
            #expect(error.kind == .integrity)
        }
        #expect(try await store.head("bad") == nil)
    }

    // MARK: Resumable uploads

    @Test("a resumable upload survives a crash after chunk 2 and sends only the rest")
    func resumableCrashAndResume() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "ckpt")
        let chunk: Int64 = 256 << 10
        let bytes = Support.bytes(3 * (1 << 20) + 123, seed: 6)
        let total = Int64(bytes.count)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        let crc = CRC32C.checksum(bytes)

        let crashing = UploadCheckpoints(crashAfterParts: 2)
        let firstProgress = TransferProgress(total: total)
        do {
            try await store.putLarge("step-1/shard.bin", from: source, options: PutOptions(crc32c: crc, progress: firstProgress),
                                     partSize: chunk, resuming: nil) { try crashing.record($0) }
            Issue.record("the upload finished although its checkpoint failed")
        } catch {
            #expect(error.kind == .io)
        }
        let saved = try #require(crashing.last)
        #expect(saved.parts.map(\.number) == [1, 2])
        #expect(saved.partSize == chunk)
        #expect(saved.uploadID.contains("upload_id="))
        #expect(firstProgress.completed == 2 * chunk)
        #expect(try await store.head("step-1/shard.bin") == nil)

        let resumed = UploadCheckpoints()
        let progress = TransferProgress(total: total)
        let info = try await store.putLarge("step-1/shard.bin", from: source, options: PutOptions(crc32c: crc, progress: progress),
                                            partSize: chunk, resuming: saved) { try resumed.record($0) }
        // Only what the session lacked went over the wire.
        #expect(progress.completed == total - 2 * chunk)
        #expect(info.size == total)
        #expect(info.crc32c == crc)
        #expect(try await store.getBytes("step-1/shard.bin") == bytes)

        let final = try #require(resumed.last)
        #expect(final.parts.count == 13)
        #expect(final.parts.map(\.number) == Array(1...13))
        #expect(final.parts.last?.size == total - 12 * chunk)
        let combined = final.parts.reduce(CRC32C().value) { CRC32C.combine($0, $1.crc32c, lengthOfSecond: Int($1.size)) }
        #expect(combined == crc)
        // Every state a crash could leave was recorded, part by part.
        #expect(resumed.all.map(\.parts.count) == Array(3...13))
    }

    @Test("a crash after the last chunk's checkpoint resumes to the finished object without sending again")
    func resumableCrashAtTheEnd() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(700_000, seed: 11)
        let crashing = UploadCheckpoints(crashAfterParts: 3)
        _ = try? await store.putLarge("done", from: .bytes(bytes), options: PutOptions(), partSize: 256 << 10,
                                      resuming: nil) { try crashing.record($0) }
        let saved = try #require(crashing.last)
        #expect(saved.parts.count == 3)
        let progress = TransferProgress(total: 700_000)
        let info = try await store.putLarge("done", from: .bytes(bytes), options: PutOptions(progress: progress),
                                            partSize: 256 << 10, resuming: saved) { _ in }
        #expect(progress.completed == 0)
        #expect(info.size == 700_000)
        #expect(try await store.getBytes("done") == bytes)
    }

    @Test("a session that ended short behind Tern's back is replaced by a new one")
    func resumableSessionEndedShort() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(900_000, seed: 12)
        let crashing = UploadCheckpoints(crashAfterParts: 2)
        _ = try? await store.putLarge("short", from: .bytes(bytes), options: PutOptions(), partSize: 256 << 10,
                                      resuming: nil) { try crashing.record($0) }
        let saved = try #require(crashing.last)
        // A status query, as another client might send: fake-gcs-server then finishes the session with
        // the 512 KiB it holds (200, off-by-one Range) instead of answering 308.
        let query = try await HTTPClient().execute(HTTPRequest(
            method: "PUT", url: HTTPURL(string: saved.uploadID)!, headers: HTTPHeaders([("Content-Range", "bytes */900000")])))
        #expect(query.status == 200)
        #expect(query.headers["Range"] == "bytes=0-524288")
        #expect(try await store.head("short")?.size == 512 << 10)

        let checkpoints = UploadCheckpoints()
        let info = try await store.putLarge("short", from: .bytes(bytes), options: PutOptions(), partSize: 256 << 10,
                                            resuming: saved) { try checkpoints.record($0) }
        #expect(info.size == 900_000)
        #expect(try await store.getBytes("short") == bytes)
        #expect(checkpoints.all.first?.uploadID != saved.uploadID)
    }

    @Test("resumable uploads of an empty and a one-chunk file, with the CRC32C computed")
    func resumableSmall() async throws {
        let (store, _, _) = try await Support.freshStore()
        for size in [0, 1000] {
            let bytes = Support.bytes(size, seed: 7)
            let checkpoints = UploadCheckpoints()
            let info = try await store.putLarge("small-\(size)", from: .bytes(bytes), options: PutOptions(), partSize: 1,
                                                resuming: nil) { try checkpoints.record($0) }
            #expect(info.size == Int64(size))
            #expect(info.crc32c == CRC32C.checksum(bytes))
            #expect(try await store.getBytes("small-\(size)") == bytes)
            #expect(checkpoints.last?.partSize == 256 << 10)
            #expect(checkpoints.last?.parts.count == 1)
        }
    }

    @Test("a create-only resumable upload refuses an existing object before sending anything")
    func resumableCreateOnly() async throws {
        let (store, _, _) = try await Support.freshStore()
        try await store.put("marker", bytes: [1])
        let progress = TransferProgress(total: 600_000)
        do {
            try await store.putLarge("marker", from: .bytes(Support.bytes(600_000, seed: 10)), options: PutOptions(createOnly: true, progress: progress),
                                     partSize: 256 << 10, resuming: nil) { _ in }
            Issue.record("a create-only upload replaced an object")
        } catch {
            #expect(error.kind == .alreadyExists)
        }
        #expect(progress.completed == 0)
        #expect(try await store.getBytes("marker") == [1])
    }

    @Test("a resumable upload whose source does not match its CRC32C is cancelled before it finishes")
    func resumableIntegrity() async throws {
        let (store, _, _) = try await Support.freshStore()
        let bytes = Support.bytes(600_000, seed: 8)
        do {
            try await store.putLarge("shard", from: .bytes(bytes), options: PutOptions(crc32c: CRC32C.checksum(bytes) ^ 0x10),
                                     partSize: 256 << 10, resuming: nil) { _ in }
            Issue.record("a mismatched upload finished")
        } catch {
            #expect(error.kind == .integrity)
        }
        #expect(try await store.head("shard") == nil)
    }

    @Test("an upload id that is not this store's session is never contacted")
    func foreignSession() async throws {
        let (store, bucket, server) = try await Support.freshStore()
        let foreign = LargeUpload(uploadID: "https://attacker.example/upload/storage/v1/b/\(bucket)/o?upload_id=x",
                                  key: "k", partSize: 256 << 10, totalSize: 3)
        do {
            try await store.abortLarge(foreign)
            Issue.record("a foreign session was aborted")
        } catch {
            #expect(error.kind == .rejected)
        }
        // Resuming with it starts a new session instead of sending anything there.
        let checkpoints = UploadCheckpoints()
        let info = try await store.putLarge("k", from: .bytes([1, 2, 3]), options: PutOptions(), partSize: 256 << 10,
                                            resuming: foreign) { try checkpoints.record($0) }
        #expect(info.size == 3)
        #expect(checkpoints.all.first?.uploadID.hasPrefix("http://127.0.0.1:\(server.port)/upload/storage/v1/b/\(bucket)/o?") == true)
    }

    @Test("abortLarge cancels a session with DELETE")
    func abort() async throws {
        let (store, _, _) = try await Support.freshStore()
        let crashing = UploadCheckpoints(crashAfterParts: 1)
        _ = try? await store.putLarge("abandoned", from: .bytes(Support.bytes(600_000, seed: 9)), options: PutOptions(),
                                      partSize: 256 << 10, resuming: nil) { try crashing.record($0) }
        let upload = try #require(crashing.last)
        // fake-gcs-server answers 499 as GCS does (it keeps the session, which GCS would drop).
        try await store.abortLarge(upload)
        #expect(try await store.head("abandoned") == nil)
    }
}

/// Where a GCS store sends its requests.
@Suite("GCS endpoint")
struct GCSEndpointTests {
    func store(endpoint: String? = nil, environment: [String: String]) throws -> GCSStore {
        try GCSStore(url: StoreURL(parsing: "gs://bucket/prefix"), options: StoreOptions(endpoint: endpoint, environment: environment))
    }

    @Test("the public endpoint by default; STORAGE_EMULATOR_HOST without a scheme means http")
    func endpoints() throws {
        #expect(try store(environment: [:]).endpoint.description == "https://storage.googleapis.com/")
        #expect(try store(environment: ["STORAGE_EMULATOR_HOST": "localhost:4443"]).endpoint.description == "http://localhost:4443/")
        #expect(try store(environment: ["STORAGE_EMULATOR_HOST": "https://gcs.internal:8443/"]).endpoint.description == "https://gcs.internal:8443/")
        let overridden = try store(endpoint: "http://127.0.0.1:9000/base", environment: ["STORAGE_EMULATOR_HOST": "localhost:4443"])
        #expect(overridden.endpoint.description == "http://127.0.0.1:9000/base")
        #expect(throws: StoreError.self) { try store(endpoint: "ftp://x", environment: [:]) }
    }

    @Test("chunk sizes are multiples of 256 KiB")
    func chunkSizes() {
        #expect(GCSStore.chunkSize(1) == 256 << 10)
        #expect(GCSStore.chunkSize(256 << 10) == 256 << 10)
        #expect(GCSStore.chunkSize((256 << 10) + 1) == 512 << 10)
        #expect(GCSStore.chunkSize(64 << 20) == 64 << 20)
    }
}
