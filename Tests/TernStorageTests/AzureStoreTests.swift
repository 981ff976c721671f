import Foundation
import Testing
import TernCrypto
@testable import TernStorage
import TernTestSupport

/// The Azure store against the local fake Blob service (Fixtures/azure/fake_blob_service.py), which
/// checks SharedKey and SAS signatures, CRC64s and conditions independently; one container per test.
@Suite("Azure store against the fake Blob service")
struct AzureStoreTests {
    typealias Support = AzureTestSupport

    @Test("put, head, get, list and delete round-trip")
    func roundTrip() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "run-1")
        let bytes = Support.bytes(10_000, seed: 1)
        let put = try await store.put("step-10/model.bin", bytes: bytes)
        #expect(put.key == "step-10/model.bin")
        #expect(put.size == 10_000)
        #expect(put.crc32c == nil)
        #expect(put.version != nil)

        let head = try #require(try await store.head("step-10/model.bin"))
        #expect(head == put)
        #expect(try await store.getBytes("step-10/model.bin") == bytes)
        #expect(try await store.list(prefix: "step-10/") == [put])

        try await store.delete("step-10/model.bin")
        #expect(try await store.head("step-10/model.bin") == nil)
        // Deleting what is not there is not an error.
        try await store.delete("step-10/model.bin")
        do {
            _ = try await store.getBytes("step-10/model.bin")
            Issue.record("a deleted blob was read")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("a put streams a file range; odd names survive the round trip")
    func fileRangeAndNames() async throws {
        let (store, _, _) = try await Support.freshStore(prefix: "a b")
        let bytes = Support.bytes(300_000, seed: 2)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let progress = TransferProgress(total: 200_000)
        let info = try await store.put("dir/ü+x%.bin", from: .file(path: path, offset: 50_000, length: 200_000),
                                       options: PutOptions(contentType: "application/x-tern", progress: progress))
        #expect(info.size == 200_000)
        #expect(progress.completed == 200_000)
        #expect(try await store.getBytes("dir/ü+x%.bin") == Array(bytes[50_000..<250_000]))
        // A name holding a character XML cannot carry is listed percent-encoded (Encoded="true").
        try await store.put("ctl\u{1}name", bytes: [1, 2, 3])
        #expect(try await store.list(prefix: "").map(\.key) == ["ctl\u{1}name", "dir/ü+x%.bin"])
    }

    @Test("list follows markers page by page and stays inside the store's prefix")
    func listPagination() async throws {
        var (store, container, server) = try await Support.freshStore(prefix: "p")
        store.listPageSize = 2
        for index in [4, 0, 6, 2, 5, 1, 3] {
            try await store.put("ckpt/file-\(index)", bytes: [UInt8(index)])
        }
        try await store.put("other", bytes: [9])
        // Beside the prefix, not under it: "p2/…" must not show up in az://account/container/p.
        try await Support.replace(server, container: container, blob: "p2/ckpt/file-9", with: [1])

        let listed = try await store.list(prefix: "ckpt/")
        #expect(listed.map(\.key) == (0...6).map { "ckpt/file-\($0)" })
        #expect(listed.map(\.size) == Array(repeating: 1, count: 7))
        #expect(listed.allSatisfy { $0.version != nil && $0.crc32c == nil })
        #expect(try await store.list(prefix: "").map(\.key) == (0...6).map { "ckpt/file-\($0)" } + ["other"])
        #expect(try await store.list(prefix: "nothing/").isEmpty)
        // 7 names under p/ckpt/ in pages of 2 is 4 requests.
        let lists = try await Support.log(server, container: container).filter { $0.op == "List Blobs" }
        #expect(lists.count == 4 + 4 + 1)
    }

    @Test("a create-only put refuses to overwrite, and recognises its own write when the answer was lost")
    func createOnly() async throws {
        let (store, container, server) = try await Support.freshStore()
        let first = try await store.put("_TERN_COMMITTED", bytes: Array("manifest-a".utf8), createOnly: true)
        do {
            try await store.put("_TERN_COMMITTED", bytes: Array("manifest-b".utf8), createOnly: true)
            Issue.record("the second create-only put succeeded")
        } catch {
            #expect(error.kind == .alreadyExists)
            #expect(error.status == 409)
            #expect(error.code == "BlobAlreadyExists")
        }
        #expect(try await store.getBytes("_TERN_COMMITTED") == Array("manifest-a".utf8))
        #expect(try await store.head("_TERN_COMMITTED")?.version == first.version)
        // Even identical bytes written by another put are refused: only the put's own id counts.
        do {
            try await store.put("_TERN_COMMITTED", bytes: Array("manifest-a".utf8), createOnly: true)
            Issue.record("a create-only put of the same bytes succeeded")
        } catch {
            #expect(error.kind == .alreadyExists)
        }

        // The service stores the blob but the answer never arrives; the retry meets 409.
        try await Support.fault(server, container: container, operation: "Put Blob", ["drop": true])
        let lost = try await store.put("step-2/_TERN_COMMITTED", bytes: Array("manifest-c".utf8), createOnly: true)
        #expect(lost.size == 10)
        #expect(try await store.getBytes("step-2/_TERN_COMMITTED") == Array("manifest-c".utf8))
        let puts = try await Support.log(server, container: container).filter { $0.op == "Put Blob" && $0.blob == "step-2/_TERN_COMMITTED" }
        #expect(puts.count == 2)
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

    @Test("a download cut midway resumes from the byte reached; a blob replaced meanwhile fails it")
    func interruptedDownload() async throws {
        let (store, container, server) = try await Support.freshStore()
        let bytes = Support.bytes(200_000, seed: 4)
        try await store.put("weights", bytes: bytes)
        try await Support.fault(server, container: container, operation: "Get Blob", ["cut": true])
        #expect(try await store.getBytes("weights", range: 1000..<150_000) == Array(bytes[1000..<150_000]))
        let gets = try await Support.log(server, container: container).filter { $0.op == "Get Blob" }
        #expect(gets.count == 2)

        try await Support.fault(server, container: container, operation: "Get Blob", ["cut": true, "replace": true])
        let sink = ByteCollector()
        do {
            try await store.get("weights", range: nil, into: sink)
            Issue.record("a read mixed two versions of the blob")
        } catch {
            #expect(error.kind == .preconditionFailed)
            #expect(error.status == 412)
        }
        // Only the first version's bytes reached the sink, and no byte twice.
        #expect(sink.bytes == Array(bytes[0..<sink.bytes.count]))
        #expect(sink.bytes.count == 100_000)
    }

    @Test("copy is server-side: synchronous with a SAS for the source, or asynchronous and polled")
    func copy() async throws {
        var (store, container, server) = try await Support.freshStore(prefix: "a/b")
        let bytes = Support.bytes(5000, seed: 5)
        let source = try await store.put("src", bytes: bytes)
        let copied = try await store.copy(from: "src", to: "dir/dst")
        #expect(copied.key == "dir/dst")
        #expect(copied.size == 5000)
        #expect(copied.version != nil && copied.version != source.version)
        #expect(try await store.getBytes("dir/dst") == bytes)
        #expect(try await store.head("dir/dst") == copied)

        store.syncCopyLimit = 1000
        try await Support.pendingCopy(server, container: container, polls: 3)
        let polled = try await store.copy(from: "src", to: "dir/async")
        #expect(polled.size == 5000)
        #expect(try await store.getBytes("dir/async") == bytes)
        let operations = try await Support.log(server, container: container).map(\.op)
        #expect(operations.contains("Copy Blob From URL"))
        #expect(operations.contains("Copy Blob"))
        do {
            try await store.copy(from: "missing", to: "x")
            Issue.record("copying a missing blob succeeded")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test("a wrong key is refused as unauthorized, and the key is nowhere in the error")
    func wrongKey() async throws {
        let (_, container, server) = try await Support.freshStore()
        let store = try AzureStore(url: Support.storeURL(container),
                                   options: Support.options(server, environment: ["AZURE_STORAGE_KEY": Support.wrongKey]))
        for attempt in 0..<2 {
            do {
                if attempt == 0 { _ = try await store.head("anything") } else { try await store.put("x", bytes: [1]) }
                Issue.record("a request signed with the wrong key went through")
            } catch {
                #expect(error.kind == .unauthorized)
                #expect(error.status == 403)
                #expect(!error.description.contains(Support.wrongKey))
                #expect(!error.description.contains(Support.key))
            }
        }
    }

    @Test("SAS tokens: a caller's container token works for every operation; a signed URL reads one blob")
    func sasTokens() async throws {
        let (keyStore, container, server) = try await Support.freshStore()
        let signer = try AzureSigner(account: Support.account, key: Support.key)
        // A container SAS (sr=c), signed the documented way; Tern only makes blob SAS itself.
        let expiry = AzureDate.iso8601(Date().addingTimeInterval(3600))
        let fields = ["racwdl", "", expiry, "/blob/\(Support.account)/\(container)", "", "", "", "2021-08-06", "c", "", "", "", "", "", "", ""]
        let token = "se=\(PercentEncoding.encode(expiry))&sp=racwdl&sv=2021-08-06&sr=c&sig=\(PercentEncoding.encode(signer.signature(of: fields.joined(separator: "\n"))))"
        let store = try AzureStore(url: Support.storeURL(container),
                                   options: Support.options(server, environment: ["AZURE_STORAGE_SAS_TOKEN": token]))
        let bytes = Support.bytes(3000, seed: 6)
        try await store.put("m/a", bytes: bytes, createOnly: true)
        #expect(try await store.getBytes("m/a", range: 10..<20) == Array(bytes[10..<20]))
        #expect(try await store.list(prefix: "m/").map(\.key) == ["m/a"])
        #expect(try await store.copy(from: "m/a", to: "m/b").size == 3000)
        try await store.delete("m/b")
        #expect(try await store.head("m/b") == nil)
        do {
            _ = try store.signedURL(for: "m/a", expiry: Date().addingTimeInterval(60))
            Issue.record("a URL was signed without the account key")
        } catch {
            #expect(error.kind == .unsupported)
        }

        let url = try keyStore.signedURL(for: "m/a", expiry: Date().addingTimeInterval(600))
        #expect(url.hasPrefix("\(Support.endpoint(server))/\(container)/m/a?se="))
        let read = try await HTTPClient().execute(HTTPRequest(method: "GET", url: try #require(HTTPURL(string: url)),
                                                              headers: HTTPHeaders([("x-ms-version", AzureStore.apiVersion)])))
        #expect(read.status == 200)
        #expect(read.body == bytes)
        // Read-only: a write with it is refused.
        let write = try await HTTPClient().execute(HTTPRequest(method: "PUT", url: try #require(HTTPURL(string: url)),
                                                               headers: HTTPHeaders([("x-ms-version", AzureStore.apiVersion), ("x-ms-blob-type", "BlockBlob")]),
                                                               body: .bytes([1])))
        #expect(write.status == 403)
    }

    @Test("bytes damaged in transit fail the CRC64 check as an integrity error; throttling is retried")
    func checksumsAndRetries() async throws {
        let (store, container, server) = try await Support.freshStore()
        try await Support.fault(server, container: container, operation: "Put Blob", ["corrupt": true])
        do {
            try await store.put("x", bytes: Support.bytes(100, seed: 7))
            Issue.record("a damaged body was stored")
        } catch {
            #expect(error.kind == .integrity)
            #expect(error.code == "Crc64Mismatch")
        }
        #expect(try await store.head("x") == nil)
        do {
            try await store.put("x", from: .bytes([1, 2, 3]), options: PutOptions(crc32c: 0x1234_5678))
            Issue.record("a source that does not match its CRC32C was sent")
        } catch {
            #expect(error.kind == .integrity)
        }
        try await Support.fault(server, container: container, operation: "Put Blob", count: 2, ["status": 503, "code": "ServerBusy"])
        #expect(try await store.put("x", bytes: [4, 5]).size == 2)
        // The damaged try, the two refused ones and the one that went through.
        #expect(try await Support.log(server, container: container).filter { $0.op == "Put Blob" }.count == 4)
    }

    @Test("an unknown container is not found")
    func missingContainer() async throws {
        let server = try await Support.fake.value()
        let store = try AzureStore(url: Support.storeURL("tern-no-such-container"), options: Support.options(server))
        do {
            try await store.put("x", bytes: [1])
            Issue.record("a put into a missing container succeeded")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.code == "ContainerNotFound")
        }
    }

    @Test("a blob replaced behind Tern's back shows a different ETag")
    func replacedBehindTheBack() async throws {
        let (store, container, server) = try await Support.freshStore(prefix: "r")
        let first = try await store.put("marker", bytes: [1, 2, 3])
        try await Support.replace(server, container: container, blob: "r/marker", with: [1, 2, 3])
        let now = try #require(try await store.head("marker"))
        #expect(now.size == 3)
        #expect(now.version != first.version)
    }

    // MARK: Large puts

    @Test("a ~3 MiB upload in 1 MiB blocks crashes after block 2 and resumes sending only the missing blocks")
    func blockUploadResumes() async throws {
        let (store, container, server) = try await Support.freshStore(prefix: "big")
        let bytes = Support.bytes(3 << 20 | 12_345, seed: 8)
        let path = try Support.scratchFile(bytes)
        defer { unlink(path) }
        let source = try BlobSource.file(path)
        let crc = CRC32C.checksum(bytes)

        let crashing = UploadCheckpoints(crashAfterParts: 2)
        do {
            try await store.putLarge("model.bin", from: source, options: PutOptions(createOnly: true, crc32c: crc),
                                     partSize: 1 << 20, resuming: nil, checkpoint: { try crashing.record($0) })
            Issue.record("the checkpoint's crash was not reported")
        } catch {
            #expect(error.kind == .io)
        }
        let saved = try #require(crashing.last)
        #expect(saved.parts.map(\.number) == [1, 2])
        #expect(saved.partSize == 1 << 20)
        #expect(saved.partCount == 4)
        #expect(try await store.head("model.bin") == nil)
        let before = try await Support.log(server, container: container).count

        let resumed = UploadCheckpoints()
        let info = try await store.putLarge("model.bin", from: source, options: PutOptions(createOnly: true, crc32c: crc),
                                            partSize: 1 << 20, resuming: saved, checkpoint: { try resumed.record($0) })
        #expect(info.size == Int64(bytes.count))
        #expect(info.crc32c == nil)
        let after = try await Support.log(server, container: container).dropFirst(before)
        #expect(try await store.getBytes("model.bin") == bytes)
        #expect(after.map(\.op) == ["Get Blob Properties", "Get Block List", "Put Block", "Put Block", "Put Block List", "Get Blob Properties"])
        let sent = after.compactMap(\.blockID)
        #expect(sent == [3, 4].map { AzureStore.encodedBlockID(AzureStore.blockID(saved.uploadID, $0)) })
        let final = try #require(resumed.last)
        #expect(final.parts.map(\.number) == [1, 2, 3, 4])
        #expect(Set(final.parts.map(\.tag.count)).count == 1)
        #expect(AzureStore.wholeCRC32C(final) == crc)
    }

    @Test("a resumed upload sends again the blocks the service no longer holds")
    func expiredBlocksAreResent() async throws {
        let (store, container, server) = try await Support.freshStore()
        let bytes = Support.bytes(2 << 20, seed: 9)
        let crashing = UploadCheckpoints(crashAfterParts: 2)
        _ = try? await store.putLarge("f", from: .bytes(bytes), options: PutOptions(), partSize: 1 << 20, resuming: nil,
                                      checkpoint: { try crashing.record($0) })
        let saved = try #require(crashing.last)
        #expect(saved.parts.count == 2)
        try await Support.expireBlocks(server, container: container, blob: "f")
        let before = try await Support.log(server, container: container).count
        let info = try await store.putLarge("f", from: .bytes(bytes), options: PutOptions(), partSize: 1 << 20, resuming: saved,
                                            checkpoint: { _ in })
        #expect(info.size == Int64(bytes.count))
        #expect(try await store.getBytes("f") == bytes)
        let puts = try await Support.log(server, container: container).dropFirst(before).filter { $0.op == "Put Block" }
        #expect(puts.count == 2)
    }

    @Test("a commit whose answer was lost is recognised, on retry and on resume")
    func lostCommit() async throws {
        let (store, container, server) = try await Support.freshStore()
        let bytes = Support.bytes(1 << 20 | 1, seed: 10)
        try await Support.fault(server, container: container, operation: "Put Block List", ["drop": true])
        let info = try await store.putLarge("m", from: .bytes(bytes), options: PutOptions(createOnly: true), partSize: 1 << 20,
                                            resuming: nil, checkpoint: { _ in })
        #expect(info.size == Int64(bytes.count))
        #expect(try await store.getBytes("m") == bytes)

        // The process died after the commit but before recording it: resuming finds its own blob.
        let checkpoints = UploadCheckpoints()
        try await store.putLarge("n", from: .bytes(bytes), options: PutOptions(createOnly: true), partSize: 1 << 20,
                                 resuming: nil, checkpoint: { try checkpoints.record($0) })
        let saved = try #require(checkpoints.last)
        let before = try await Support.log(server, container: container).count
        let again = try await store.putLarge("n", from: .bytes(bytes), options: PutOptions(createOnly: true), partSize: 1 << 20,
                                             resuming: saved, checkpoint: { _ in })
        #expect(again.size == Int64(bytes.count))
        #expect(try await Support.log(server, container: container).dropFirst(before).map(\.op) == ["Get Blob Properties"])
    }

    @Test("large create-only puts refuse an existing blob; a source that changed is never committed")
    func largeRefusals() async throws {
        let (store, container, server) = try await Support.freshStore()
        try await store.put("taken", bytes: [1])
        do {
            try await store.putLarge("taken", from: .bytes(Support.bytes(3000, seed: 11)), options: PutOptions(createOnly: true),
                                     partSize: 1000, resuming: nil, checkpoint: { _ in })
            Issue.record("a large create-only put overwrote a blob")
        } catch {
            #expect(error.kind == .alreadyExists)
        }
        #expect(try await Support.log(server, container: container).filter { $0.op == "Put Block" }.isEmpty)

        let bytes = Support.bytes(3000, seed: 12)
        do {
            try await store.putLarge("changed", from: .bytes(bytes), options: PutOptions(crc32c: CRC32C.checksum(bytes) ^ 1),
                                     partSize: 1000, resuming: nil, checkpoint: { _ in })
            Issue.record("blocks that do not add up to the expected CRC32C were committed")
        } catch {
            #expect(error.kind == .integrity)
        }
        #expect(try await store.head("changed") == nil)
        #expect(try await Support.log(server, container: container).filter { $0.op == "Put Block List" }.isEmpty)

        // An empty source is one Put Blob; abort has nothing to delete.
        let empty = try await store.putLarge("empty", from: .bytes([]), options: PutOptions(), partSize: 1000, resuming: nil, checkpoint: { _ in })
        #expect(empty.size == 0)
        try await store.abortLarge(LargeUpload(uploadID: AzureStore.newUploadID(), key: "x", partSize: 1, totalSize: 1))
        await #expect(throws: StoreError.self) {
            try await store.abortLarge(LargeUpload(uploadID: "https://elsewhere", key: "x", partSize: 1, totalSize: 1))
        }
    }
}
