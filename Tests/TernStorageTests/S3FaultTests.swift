import Foundation
import Testing
import TernCrypto
import TernStorage
import TernTestSupport

/// Failures moto never produces, injected by a pass-through proxy of ours (Fixtures/s3/fault_proxy.py)
/// in front of moto: S3 answering CompleteMultipartUpload with 200 and an error document, throttling,
/// and a download cut short. The proxy forwards requests unchanged, so moto still checks every
/// signature.
@Suite("S3 store under injected faults")
struct S3FaultTests {
    typealias Support = S3TestSupport

    static let size = 11 << 20
    static let partSize: Int64 = 5 << 20

    static func upload(_ store: S3Store, key: String, seed: UInt64) async throws(StoreError) -> ([UInt8], ObjectInfo) {
        let bytes = Support.bytes(size, seed: seed)
        let path = try! Support.scratchFile(bytes)
        defer { unlink(path) }
        let info = try await store.putLarge(key, from: try .file(path), options: PutOptions(), partSize: partSize, resuming: nil) { _ in }
        return (bytes, info)
    }

    @Test("Complete answered 200 with an InternalError document (not done) is retried")
    func completeErrorBefore() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        try await Support.injectFault(proxy, bucket: bucket, operation: "complete", mode: "error-before")
        let (bytes, info) = try await Self.upload(store, key: "a", seed: 20)
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await Support.proxyStats(proxy, bucket: bucket)["complete"] == 2)
        #expect(try await store.getBytes("a") == bytes)
    }

    @Test("Complete done but answered 200 with an error document: the retry finds it completed")
    func completeErrorAfter() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        try await Support.injectFault(proxy, bucket: bucket, operation: "complete", mode: "error-after")
        let (bytes, info) = try await Self.upload(store, key: "b", seed: 21)
        #expect(info.crc32c == CRC32C.checksum(bytes))
        #expect(try await Support.proxyStats(proxy, bucket: bucket)["complete"] == 2)
        #expect(try await store.getBytes("b") == bytes)
    }

    @Test("Complete answered 200 with a final error document fails with that code")
    func completeErrorFinal() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        try await Support.injectFault(proxy, bucket: bucket, operation: "complete", mode: "error-final")
        do {
            _ = try await Self.upload(store, key: "c", seed: 22)
            Issue.record("an error document was taken for success")
        } catch {
            #expect(error.kind == .rejected)
            #expect(error.code == "InvalidPart")
            #expect(error.status == 200)
        }
        #expect(try await Support.proxyStats(proxy, bucket: bucket)["complete"] == 1)
        #expect(try await store.head("c") == nil)
    }

    @Test("a throttled part (503 SlowDown) is sent again")
    func partThrottled() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        try await Support.injectFault(proxy, bucket: bucket, operation: "part", mode: "slowdown")
        let (bytes, _) = try await Self.upload(store, key: "d", seed: 23)
        #expect(try await Support.proxyStats(proxy, bucket: bucket)["part"] == 4)  // 3 parts, one twice
        #expect(try await store.getBytes("d") == bytes)
    }

    @Test("a download cut short resumes from the byte it reached, pinned to the same ETag")
    func truncatedDownload() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        let bytes = Support.bytes(1 << 20, seed: 24)
        try await store.put("e", from: .bytes(bytes), options: PutOptions())
        try await Support.injectFault(proxy, bucket: bucket, operation: "get", mode: "truncate")
        #expect(try await store.getBytes("e") == bytes)
        #expect(try await Support.proxyStats(proxy, bucket: bucket)["get"] == 2)
    }

    @Test("an object whose stored CRC32C differs from what was sent is an integrity error, and is deleted")
    func storedChecksumMismatch() async throws {
        let (store, bucket, proxy) = try await Support.storeBehindProxy()
        try await Support.injectFault(proxy, bucket: bucket, operation: "head", mode: "bad-checksum")
        do {
            _ = try await Self.upload(store, key: "f", seed: 25)
            Issue.record("a wrong stored checksum went unnoticed")
        } catch {
            #expect(error.kind == .integrity)
            #expect(error.message.contains("deadbeef"))
            #expect(error.message.hasSuffix("the object was deleted"))
        }
        #expect(try await store.head("f") == nil)
    }
}
