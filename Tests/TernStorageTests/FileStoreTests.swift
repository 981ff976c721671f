import Foundation
import Glibc
import TernCrypto
import TernStorage
import TernTestSupport
import Testing

/// The file store: the BlobStore contract on a local directory, and the URL parser every store uses.
@Suite("FileStore")
struct FileStoreTests {
    static func fresh() throws -> (FileStore, String) {
        let root = TestDatabase.scratchDirectory("files")
        return (try FileStore(url: StoreURL(parsing: "file://\(root)")), root)
    }

    @Test("put, head, get (whole and ranged), list, copy and delete")
    func contract() async throws {
        let (store, root) = try Self.fresh()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 17) }
        let info = try await store.put("a/b/one.bin", from: .bytes(bytes), options: PutOptions())
        #expect(info.size == 100_000)
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await store.head("a/b/one.bin")?.size == 100_000)
        #expect(try await store.head("a/b/missing") == nil)
        #expect(try await store.getBytes("a/b/one.bin") == bytes)
        #expect(try await store.getBytes("a/b/one.bin", range: 10..<20) == Array(bytes[10..<20]))
        try await store.put("a/c.txt", bytes: Array("c".utf8))
        try await store.put("z.txt", bytes: [])
        #expect(try await store.list(prefix: "a/").map(\.key) == ["a/b/one.bin", "a/c.txt"])
        #expect(try await store.list(prefix: "").map(\.key) == ["a/b/one.bin", "a/c.txt", "z.txt"])
        #expect(try await store.list(prefix: "a/b/o").map(\.key) == ["a/b/one.bin"])
        try await store.copy(from: "a/b/one.bin", to: "copy.bin")
        #expect(try await store.getBytes("copy.bin") == bytes)
        try await store.delete("a/c.txt")
        try await store.delete("a/c.txt")
        #expect(try await store.head("a/c.txt") == nil)
        await #expect(throws: StoreError.self) { try await store.getBytes("a/c.txt") }
    }

    @Test("create-only refuses an existing object and leaves it untouched; a replaced object has a new version")
    func createOnlyAndVersions() async throws {
        let (store, root) = try Self.fresh()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let first = try await store.put("marker", bytes: Array("one".utf8), createOnly: true)
        do {
            try await store.put("marker", bytes: Array("two".utf8), createOnly: true)
            Issue.record("create-only overwrote an object")
        } catch {
            #expect(error.kind == .alreadyExists)
        }
        #expect(try await store.getBytes("marker") == Array("one".utf8))
        try await store.put("marker", bytes: Array("two".utf8))
        #expect(try await store.head("marker")?.version != first.version)
        // No temporary files are left or listed.
        #expect(try await store.list(prefix: "").map(\.key) == ["marker"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root) == ["marker"])
    }

    @Test("a source whose bytes do not match the CRC32C given is refused and nothing is stored")
    func checksumMismatch() async throws {
        let (store, root) = try Self.fresh()
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            try await store.put("x", from: .bytes([1, 2, 3]), options: PutOptions(crc32c: 12345))
            Issue.record("a mismatched checksum was accepted")
        } catch {
            #expect(error.kind == .integrity)
        }
        #expect(try await store.head("x") == nil)
    }

    @Test("keys that escape the store, and symbolic links, are refused")
    func hostileKeys() async throws {
        let (store, root) = try Self.fresh()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for key in ["../outside", "/etc/passwd", "a//b", "a/./b", "", "a/.tern-tmp-1"] {
            await #expect(throws: StoreError.self, "\(key)") { try await store.put(key, bytes: [1]) }
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        symlink("/etc/hostname", "\(root)/link")
        await #expect(throws: StoreError.self) { _ = try await store.head("link") }
        await #expect(throws: StoreError.self) { try await store.getBytes("link") }
    }

    @Test("store URLs: every scheme, and clear refusals")
    func urls() throws {
        #expect(try StoreURL(parsing: "s3://my-bucket/a/b/").description == "s3://my-bucket/a/b")
        #expect(try StoreURL(parsing: "gs://bucket").prefix == "")
        let azure = try StoreURL(parsing: "az://account1/container-1/pre/fix")
        #expect(azure.bucket == "account1")
        #expect(azure.container == "container-1")
        #expect(azure.objectName("k") == "pre/fix/k")
        #expect(azure.key(ofObjectName: "pre/fix/k") == "k")
        #expect(try StoreURL(parsing: "file:///tmp//x/").prefix == "/tmp/x")
        let refusals: [(String, String)] = [
            ("s3://Bad_Bucket/x", "not a valid bucket name"),
            ("s3://key:secret@bucket/x", "no user, password"),
            ("s3://bucket/x?X-Amz-Signature=abc", "no query"),
            ("ftp://host/x", "unknown scheme"),
            ("file://relative/path", "absolute"),
            ("az://account", "container is missing"),
            ("gs://bucket/../x", ". or .."),
            ("bucket/x", "not a store URL"),
        ]
        for (text, reason) in refusals {
            do {
                _ = try StoreURL(parsing: text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.kind == .invalidURL)
                #expect(error.message.contains(reason), "\(text): \(error.message)")
                #expect(!error.description.contains("secret"), "\(error.description)")
                #expect(!error.description.contains("X-Amz-Signature=abc"), "\(error.description)")
            }
        }
    }

    @Test("a large upload in parts resumes after a crash and sends only the missing parts")
    func largeUploadResumes() async throws {
        let (store, root) = try Self.fresh()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let source = TestDatabase.scratchDirectory("large")
        let bytes = (0..<(5 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ ($0 >> 12)) }
        try Data(bytes).write(to: URL(fileURLWithPath: source))
        defer { unlink(source) }
        struct Crash: Error {}
        let saved = SavedUpload()
        let blob = try BlobSource.file(source)
        await #expect(throws: StoreError.self) {
            try await store.putLarge("big", from: blob, options: PutOptions(), partSize: 1 << 20, resuming: nil) { upload in
                await saved.set(upload)
                if upload.parts.count == 3 { throw Crash() }
            }
        }
        #expect(try await store.head("big") == nil)
        let halfway = try #require(await saved.upload)
        let progress = TransferProgress(total: Int64(bytes.count))
        let info = try await store.putLarge("big", from: blob, options: PutOptions(crc32c: CRC32C.checksum(bytes), progress: progress),
                                            partSize: 1 << 20, resuming: halfway) { _ in }
        #expect(info.size == Int64(bytes.count))
        #expect(progress.completed == Int64(bytes.count) - 3 << 20)
        #expect(try await store.getBytes("big") == bytes)
        #expect(try await store.list(prefix: "").map(\.key) == ["big"])
        // Aborting an upload removes its partial file.
        let other = SavedUpload()
        _ = try? await store.putLarge("other", from: blob, options: PutOptions(), partSize: 1 << 20, resuming: nil) { upload in
            await other.set(upload)
            if !upload.parts.isEmpty { throw Crash() }
        }
        try await store.abortLarge(try #require(await other.upload))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["big"])
    }
}

actor SavedUpload {
    var upload: LargeUpload?
    func set(_ upload: LargeUpload) { self.upload = upload }
}
