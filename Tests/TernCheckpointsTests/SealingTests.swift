import Foundation
import Glibc
import TernCheckpoints
import TernCrypto
import TernModel
import Testing

/// The fixed directory behind the golden id: a marker, an empty file, a nested directory and a
/// non-ASCII (NFC) name. Changing any byte here, or any byte of the manifest format, changes the id.
func writeGoldenCheckpoint(into scratch: Scratch) {
    scratch.write("TERN_COMPLETE", "step 100\n")
    scratch.write("config.json", "{\"lr\":0.0003,\"step\":100}\n")
    scratch.write("model/layer-0.bin", (0...255).map { UInt8($0) })
    scratch.write("model/layer-1.bin", String(repeating: "tern", count: 1000))
    scratch.write("model/empty.bin", "")
    scratch.write("optimizer/\u{E9}tat-\u{3BA}.txt", "Gr\u{FC}\u{DF}e, \u{4E16}\u{754C}\n")
}

@Suite("Sealing")
struct SealingTests {
    /// The manifest format must not drift silently. The literal below was checked by hand against
    /// DESIGN §5 (sorted keys, no whitespace, files sorted by UTF-8 path, lower-case hex, roles) and
    /// reproduced by an independent implementation (Python: hashlib, a bitwise CRC32C, and
    /// `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`). The line breaks
    /// are escaped (`\` at line end), so the string has none; the name is written with escapes
    /// so the source file's own normalisation cannot change it.
    static let goldenJSON = """
        {"chunk_size":67108864,"chunks":{"sha256":"3d6db6d0090296f601dd44207fc2c587de5e50e84fcad8c5dd81375a7003f1be","size":176},\
        "files":[\
        {"crc32c":"ddeadaee","path":"TERN_COMPLETE","role":"marker","root":"027b5a16f6e5ae8860650349d13a1c3a098fb2c2b83d41a647d1eaca24011ca9","size":9},\
        {"crc32c":"892cb242","path":"config.json","role":"data","root":"e7ead52170d404056b52db2db246d4d2affd9f1da1c7d80002579fde9d3d5941","size":25},\
        {"crc32c":"00000000","path":"model/empty.bin","role":"data","root":"2b6a36edd4daff55c74480e765fab3e9065aec1b7e113533e7bc58b35e388ee9","size":0},\
        {"crc32c":"9c44184b","path":"model/layer-0.bin","role":"data","root":"17dd34f7553e2523cbe3145704b7568c44b456bc5f125c66187754cfe1e9e487","size":256},\
        {"crc32c":"039e74a8","path":"model/layer-1.bin","role":"data","root":"f6e1bb2d9c77c0bf64672cfc321802d3fa634c387271a70fc0d97bfaffc35a1e","size":4000},\
        {"crc32c":"ef1c3081","path":"optimizer/\u{E9}tat-\u{3BA}.txt","role":"data","root":"23633963cd99e864ba0c10567833bee760790b3bce5726cac469d206549f6ba0","size":16}\
        ],"format":"tern-manifest/v1"}
        """
    static let goldenID = "f0db62c6102747daa5304ffe17c77c760feefbcf470d394fa6b0140bb8dbeab4"

    @Test("a fixed small directory seals to the golden manifest and id")
    func goldenManifest() async throws {
        try await withScratch { scratch in
            writeGoldenCheckpoint(into: scratch)
            let sealed = try await CheckpointSealer().seal(directory: scratch.path)
            #expect(sealed.manifestJSON == Self.goldenJSON)
            #expect(sealed.id == Self.goldenID)
            #expect(sealed.id == SHA256.hash(Self.goldenJSON).hex)
            #expect(sealed.format == .marker)
            #expect(sealed.totalBytes == 9 + 25 + 256 + 4000 + 0 + 16)
            // The literal parses back to the same manifest and id.
            let parsed = try CheckpointManifest.parse(Self.goldenJSON)
            #expect(parsed == sealed.manifest)
            #expect(parsed.id == Self.goldenID)
            #expect(try ChunkSidecar.decode(sealed.sidecar, for: parsed).map(\.count) == [1, 1, 0, 1, 1, 1])
        }
    }

    @Test("sealing the same bytes twice, in two places, gives the same id")
    func sameBytesSameID() async throws {
        try await withScratch { first in
            try await withScratch { second in
                writeGoldenCheckpoint(into: first)
                writeGoldenCheckpoint(into: second)
                let a = try await smallSealer.seal(directory: first.path)
                let b = try await smallSealer.seal(directory: first.path)
                let c = try await smallSealer.seal(directory: second.path)
                #expect(a.id == b.id)
                #expect(a.id == c.id)
                #expect(a.manifestJSON == c.manifestJSON)
                #expect(a.sidecar == c.sidecar)
                // A different chunk size is a different manifest (and id), by design.
                let d = try await CheckpointSealer().seal(directory: first.path)
                #expect(d.id != a.id)
                // One changed byte changes the id.
                overwriteByte(at: 3, of: second.at("model/layer-0.bin"), with: 0xFF)
                let e = try await smallSealer.seal(directory: second.path)
                #expect(e.id != a.id)
            }
        }
    }

    @Test("concurrent sealing of the same directory gives one id")
    func concurrentSealing() async throws {
        try await withScratch { scratch in
            writeGoldenCheckpoint(into: scratch)
            scratch.write("model/big.bin", seededBytes(3 * mebibyte + 17, seed: 7))
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let engine = HashingEngine(chunkSize: Int64(mebibyte), threads: 1 + index % 3)
                        return try await CheckpointSealer(engine: engine).seal(directory: scratch.path).id
                    }
                }
                var ids: [String] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            #expect(ids.count == 8)
            #expect(Set(ids).count == 1)
            #expect(ids.first == (try await smallSealer.seal(directory: scratch.path)).id)
        }
    }

    @Test("chunk digests are SHA-256 of the ranges, the CRC32C is the whole file's, the root is FileRoot's")
    func digestsMatchOneShot() async throws {
        try await withScratch { scratch in
            let size = 3 * mebibyte + 123
            let bytes = seededBytes(size, seed: 42)
            scratch.write("TERN_COMPLETE", "")
            scratch.write("shard.bin", bytes)
            let sealed = try await smallSealer.seal(directory: scratch.path)
            let file = try #require(sealed.manifest.files.first { $0.path == "shard.bin" })
            #expect(file.size == Int64(size))
            #expect(file.crc32c == hex8(CRC32C.checksum(bytes)))
            #expect(file.crc32c == hex8(CRC32C.checksum(bytes, implementation: .portable)))
            #expect(file.role == .data)

            let perFile = try ChunkSidecar.decode(sealed.sidecar, for: sealed.manifest)
            let index = try #require(sealed.manifest.files.firstIndex { $0.path == "shard.bin" })
            let chunks = perFile[index]
            let expected = stride(from: 0, to: size, by: mebibyte).map { SHA256.hash(Array(bytes[$0..<min($0 + mebibyte, size)])) }
            #expect(chunks.count == 4)
            #expect(chunks == expected)
            // Root: the domain tag, sizes and chunk digests, assembled here by hand.
            var preimage = Array("tern-file-root/v1".utf8) + [0]
            preimage += bigEndianBytes(UInt64(size)) + bigEndianBytes(UInt64(mebibyte))
            for digest in expected { preimage += digest.bytes }
            #expect(file.root == SHA256.hash(preimage).hex)

            // The same values from the engine directly, on one thread and on several.
            let scanned = try DirectoryScan.files(in: scratch.path).filter { $0.path == "shard.bin" }
            for threads in [1, 2, 5] {
                let digest = try HashingEngine(chunkSize: Int64(mebibyte), threads: threads).hashBlocking(files: scanned, root: scratch.path)
                #expect(digest.count == 1)
                #expect(digest[0].chunkDigests == expected)
                #expect(digest[0].crc32c == CRC32C.checksum(bytes))
                #expect(digest[0].root.hex == file.root)
            }
            // Sidecar layout: magic, big-endian count, then the digests in manifest order.
            #expect(Array(sealed.sidecar.prefix(8)) == Array("TERNCHK1".utf8))
            #expect(Array(sealed.sidecar[8..<16]) == bigEndianBytes(4))
            #expect(sealed.sidecar.count == 16 + 4 * 32)
            #expect(sealed.manifest.chunks.sha256 == SHA256.hash(sealed.sidecar).hex)
        }
    }

    @Test("a file just over one default 64 MiB chunk")
    func defaultChunkSize() async throws {
        try await withScratch { scratch in
            let chunk = Int(CheckpointManifest.defaultChunkSize)
            #expect(chunk == 64 * mebibyte)
            let bytes = seededBytes(chunk + 1, seed: 64)
            scratch.write("TERN_COMPLETE", "")
            scratch.write("weights.bin", bytes)
            let sealed = try await CheckpointSealer().seal(directory: scratch.path)
            #expect(sealed.manifest.chunkSize == Int64(chunk))
            let index = try #require(sealed.manifest.files.firstIndex { $0.path == "weights.bin" })
            let chunks = try ChunkSidecar.decode(sealed.sidecar, for: sealed.manifest)[index]
            let first = SHA256.hash(Array(bytes[0..<chunk]))
            let second = SHA256.hash([bytes[chunk]])
            #expect(chunks == [first, second])
            #expect(sealed.manifest.files[index].crc32c == hex8(CRC32C.checksum(bytes)))

            // The last byte changed: reported as exactly the one-byte second chunk.
            overwriteByte(at: Int64(chunk), of: scratch.at("weights.bin"), with: bytes[chunk] ^ 0x01)
            let report = try await CheckpointVerifier().verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.changedSummary == ["weights.bin: 67108864..<67108865"])
        }
    }

    @Test("FileRoot test vector, built byte by byte")
    func fileRootVector() throws {
        let digests = [SHA256.hash("chunk one"), SHA256.hash("chunk two")]
        var preimage: [UInt8] = [0x74, 0x65, 0x72, 0x6E, 0x2D, 0x66, 0x69, 0x6C, 0x65, 0x2D, 0x72, 0x6F, 0x6F, 0x74, 0x2F, 0x76, 0x31, 0x00]  // "tern-file-root/v1\0"
        preimage += [0, 0, 0, 0, 0, 0x10, 0, 0x05]  // size 1,048,581 big-endian
        preimage += [0, 0, 0, 0, 0, 0x10, 0, 0]  // chunk size 1 MiB big-endian
        preimage += digests[0].bytes + digests[1].bytes
        let root = FileRoot.root(size: 1_048_581, chunkSize: 1 << 20, chunkDigests: digests)
        #expect(root == SHA256.hash(preimage))
        // An empty file has no chunks; its root is still domain-separated from the empty hash.
        let empty = FileRoot.root(size: 0, chunkSize: 64 << 20, chunkDigests: [])
        #expect(empty.hex == "2b6a36edd4daff55c74480e765fab3e9065aec1b7e113533e7bc58b35e388ee9")
        #expect(empty != SHA256.hash([UInt8]()))
        // The same chunk digests under another size or chunk size name a different root.
        #expect(FileRoot.root(size: 1_048_582, chunkSize: 1 << 20, chunkDigests: digests) != root)
        #expect(FileRoot.root(size: 1_048_581, chunkSize: 2 << 20, chunkDigests: digests) != root)
    }

    @Test("empty files seal with no chunks, CRC 00000000 and the empty root")
    func emptyFiles() async throws {
        try await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.write("a/empty-1", "")
            scratch.write("a/b/empty-2", "")
            let sealed = try await smallSealer.seal(directory: scratch.path)
            #expect(sealed.manifest.files.map(\.path) == ["TERN_COMPLETE", "a/b/empty-2", "a/empty-1"])
            let emptyRoot = FileRoot.root(size: 0, chunkSize: Int64(mebibyte), chunkDigests: []).hex
            for file in sealed.manifest.files {
                #expect(file.size == 0)
                #expect(file.crc32c == "00000000")
                #expect(file.root == emptyRoot)
            }
            #expect(sealed.manifest.files.map(\.role) == [.marker, .data, .data])
            #expect(sealed.sidecar == Array("TERNCHK1".utf8) + [0, 0, 0, 0, 0, 0, 0, 0])
            #expect(sealed.manifest.totalChunks == 0)
            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.isIdentical)
            #expect(report.filesChecked == 3)
            // An empty file that gains a byte is resized.
            scratch.write("a/empty-1", "x")
            let after = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(after.resizedSummary == ["a/empty-1: 0 -> 1"])
        }
    }

    @Test("10,000 small files")
    func tenThousandFiles() async throws {
        try await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            for directory in 0..<100 {
                scratch.makeDirectory("rank-\(directory)")
                for file in 0..<100 {
                    writeFile(scratch.at("rank-\(directory)/shard-\(file).bin"), Array("\(directory)/\(file)".utf8))
                }
            }
            let sealed = try await smallSealer.seal(directory: scratch.path)
            #expect(sealed.manifest.files.count == 10_001)
            #expect(sealed.manifest.totalChunks == 10_000)
            #expect(sealed.sidecar.count == 16 + 32 * 10_000)
            let paths = sealed.manifest.files.map(\.path)
            #expect(paths == paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            let sample = try #require(sealed.manifest.files.first { $0.path == "rank-42/shard-7.bin" })
            #expect(sample.crc32c == hex8(CRC32C.checksum("42/7")))
            #expect(try CheckpointManifest.parse(sealed.manifestJSON).id == sealed.id)
            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.isIdentical)
            #expect(report.filesChecked == 10_001)
        }
    }

    @Test("non-ASCII NFC names are sealed as their UTF-8 bytes")
    func nonASCIINames() async throws {
        try await withScratch { scratch in
            let names = ["donn\u{E9}es/\u{FC}berpr\u{FC}fung-\u{F1}.bin", "\u{65E5}\u{672C}\u{8A9E}.txt", "\u{1F680}/\u{3A9}\u{3BC}\u{3AD}\u{3B3}\u{3B1}", "Zed", "zed"]
            scratch.write("TERN_COMPLETE", "")
            for (index, name) in names.enumerated() { scratch.write(name, "file \(index)") }
            let sealed = try await smallSealer.seal(directory: scratch.path)
            let paths = sealed.manifest.files.map(\.path)
            #expect(Set(paths) == Set(names + ["TERN_COMPLETE"]))
            #expect(paths.map { Array($0.utf8) } == paths.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
            // Literal UTF-8 in the JSON, not \u escapes.
            #expect(sealed.manifestJSON.contains("\"path\":\"\u{65E5}\u{672C}\u{8A9E}.txt\""))
            #expect(try CheckpointManifest.parse(sealed.manifestJSON) == sealed.manifest)
            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.isIdentical)
        }
    }

    @Test("a name not in NFC, or not valid UTF-8, is refused with the reason")
    func unnormalisedNames() async throws {
        await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.write("e\u{301}tat.bin", "decomposed")  // NFD: e + combining acute
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(error?.description.contains("NFC") == true)
        }
        await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            let bad: [CChar] = Array((scratch.path + "/bad-").utf8CString.dropLast()) + [CChar(bitPattern: 0xFF), CChar(bitPattern: 0xFE), 0]
            let descriptor = open(bad, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            #expect(descriptor >= 0)
            close(descriptor)
            defer { unlink(bad) }
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(error?.description.contains("not valid UTF-8") == true)
        }
    }

    @Test("symbolic links, FIFOs and a linked root are refused")
    func refusedEntries() async throws {
        await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.write("data/real.bin", "real")
            #expect(symlink("real.bin", scratch.at("data/link.bin")) == 0)
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(error?.description.contains("symbolic link") == true)
            #expect(error?.description.contains("data/link.bin") == true)
        }
        await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.makeDirectory("real")
            #expect(symlink("real", scratch.at("dirlink")) == 0)
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(error?.description.contains("symbolic link") == true)
        }
        await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            #expect(mkfifo(scratch.at("pipe"), 0o644) == 0)
            let error = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(error?.description.contains("FIFO") == true)
        }
        await withScratch { scratch in
            scratch.write("step/TERN_COMPLETE", "")
            #expect(symlink(scratch.at("step"), scratch.at("alias")) == 0)
            #expect(throws: CheckpointError.self) { try DirectoryScan.files(in: scratch.at("alias")) }
            #expect(throws: CheckpointError.self) { try DirectoryScan.files(in: scratch.at("step/TERN_COMPLETE")) }
            #expect(throws: CheckpointError.self) { try DirectoryScan.files(in: scratch.at("missing")) }
        }
    }

    @Test("paths with .., absolute, empty components, NUL, backslash, control characters are refused",
          arguments: ["../x", "a/../b", "..", "/abs", "a//b", "a/", "./a", "a/./b", "", "a\u{0}b", "a\\b", "a\nb", "a\u{7F}", "e\u{301}",
                     // A combining mark after "/" or "\\" makes one Swift Character of the pair; the bytes still escape.
                     "../\u{301}x", "/\u{301}abs", "a/../\u{301}", "a\\\u{301}b", String(repeating: "x", count: 256)])
    func unsafePaths(path: String) {
        #expect(CheckpointPath.problem(with: path) != nil)
        #expect(throws: ManifestError.self) { try CheckpointPath.validate(path) }
    }

    @Test("ordinary paths are accepted", arguments: ["a", "a/b/c.bin", "..a", "a..", ".metadata", "\u{E9}", "x/\u{1F680}"])
    func safePaths(path: String) {
        #expect(CheckpointPath.problem(with: path) == nil)
    }

    @Test("an incomplete directory is never sealed, and the error says why")
    func incompleteNotSealed() async throws {
        await withScratch { scratch in
            scratch.write("weights.bin", "w")
            let auto = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path) }
            #expect(auto?.description.contains("not a complete checkpoint") == true)
            #expect(auto?.description.contains("no completion signal found") == true)
            let marker = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path, format: .marker) }
            #expect(marker?.description.contains("no TERN_COMPLETE marker") == true)
            let dcp = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path, format: .torchDCP) }
            #expect(dcp?.description.contains(".metadata") == true)
            let orbax = await #expect(throws: CheckpointError.self) { try await smallSealer.seal(directory: scratch.path, format: .orbax) }
            #expect(orbax?.description.contains("commit_success.txt") == true)
        }
    }

    @Test("roles: framework markers are marker, everything else data")
    func roles() async throws {
        try await withScratch { scratch in
            scratch.write("step/.metadata", "dcp")
            scratch.write("step/__0_0.distcp", "shard")
            let dcp = try await smallSealer.seal(directory: scratch.at("step"))
            #expect(dcp.format == .torchDCP)
            #expect(dcp.manifest.files.map(\.role) == [.marker, .data])
            scratch.write("iter_0000100/model.pt", "weights")
            scratch.write("latest_checkpointed_iteration.txt", "100")
            let megatron = try await smallSealer.seal(directory: scratch.at("iter_0000100"))
            #expect(megatron.format == .megatron)
            #expect(megatron.manifest.files.map(\.role) == [.data])
        }
    }

    @Test("progress reaches the total")
    func progressReported() async throws {
        try await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.write("a.bin", seededBytes(2 * mebibyte + 5, seed: 3))
            scratch.write("b.bin", seededBytes(10, seed: 4))
            let seen = ProgressLog()
            _ = try await smallSealer.seal(directory: scratch.path) { seen.add($0) }
            let last = seen.values.max { $0.bytesDone < $1.bytesDone }
            #expect(last?.bytesDone == Int64(2 * mebibyte + 15))
            #expect(last?.bytesTotal == Int64(2 * mebibyte + 15))
            #expect(seen.values.count == 4)
        }
    }
}

/// Collects progress reports from the hashing threads.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [HashingProgress] = []
    func add(_ progress: HashingProgress) { lock.withLock { stored.append(progress) } }
    var values: [HashingProgress] { lock.withLock { stored } }
}
