import Foundation
import Glibc
import TernCheckpoints
import TernCrypto
import TernModel
import Testing

@Suite("Verification")
struct VerificationTests {
    /// A sealed checkpoint with a 3-chunk file (1 MiB chunks), a small file and a marker.
    static func sealedThreeChunk(in scratch: Scratch) async throws -> SealedCheckpoint {
        scratch.write("TERN_COMPLETE", "")
        scratch.write("model/shard-0.bin", seededBytes(3 * mebibyte, seed: 11))
        scratch.write("model/shard-1.bin", seededBytes(3 * mebibyte + 100, seed: 12))
        scratch.write("config.json", "{}")
        return try await smallSealer.seal(directory: scratch.path)
    }

    @Test("an untouched directory verifies identical")
    func identical() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.isIdentical)
            #expect(report.checkpointID == sealed.id)
            #expect(report.filesChecked == 4)
            #expect(report.bytesChecked == sealed.totalBytes)
            // Without the sidecar too.
            let plain = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: nil)
            #expect(plain.isIdentical)
        }
    }

    @Test("one corrupted byte in the middle of a 3-chunk file is reported at the right range")
    func corruptedMiddleByte() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            let path = scratch.at("model/shard-0.bin")
            let middle = Int64(3 * mebibyte / 2)
            let original = scratch.read("model/shard-0.bin")[Int(middle)]
            overwriteByte(at: middle, of: path, with: original ^ 0x80)

            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(!report.isIdentical)
            #expect(report.missing.isEmpty && report.extra.isEmpty && report.resized.isEmpty)
            #expect(report.changedSummary == ["model/shard-0.bin: 1048576..<2097152"])
            #expect(report.changed.first?.ranges.first?.description == "bytes 1048576..<2097152")
            #expect(report.filesChecked == 4)

            // Without the sidecar the file is still reported, whole.
            let plain = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: nil)
            #expect(plain.changedSummary == ["model/shard-0.bin: "])

            // A verifier built for 64 MiB chunks follows the manifest's chunk size.
            let other = try await CheckpointVerifier().verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(other.changedSummary == report.changedSummary)

            // Put the byte back: identical again.
            overwriteByte(at: middle, of: path, with: original)
            let restored = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(restored.isIdentical)
        }
    }

    @Test("corruption in the first byte and in the short last chunk")
    func corruptedEdges() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            let size = Int64(3 * mebibyte + 100)
            overwriteByte(at: 0, of: scratch.at("model/shard-1.bin"), with: 0xAA ^ scratch.read("model/shard-1.bin")[0])
            overwriteByte(at: size - 1, of: scratch.at("model/shard-1.bin"), with: 0x55 ^ scratch.read("model/shard-1.bin")[Int(size - 1)])
            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.changedSummary == ["model/shard-1.bin: 0..<1048576,3145728..<\(size)"])
        }
    }

    @Test("truncated, missing and extra files")
    func truncatedMissingExtra() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            #expect(truncate(scratch.at("model/shard-1.bin"), off_t(2 * mebibyte)) == 0)
            #expect(unlink(scratch.at("config.json")) == 0)
            scratch.write("model/shard-2.bin", "new")
            scratch.write("notes/extra.txt", "extra")

            let report = try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            #expect(report.resizedSummary == ["model/shard-1.bin: 3145828 -> 2097152"])
            #expect(report.missing == ["config.json"])
            #expect(report.extra == ["model/shard-2.bin", "notes/extra.txt"])
            #expect(report.changed.isEmpty)
            #expect(report.filesChecked == 2)
            #expect(report.bytesChecked == Int64(3 * mebibyte))
            #expect(!report.isIdentical)

            // The report as JSON: the keys a CLI prints.
            let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            for key in ["\"checkpoint_id\"", "\"missing\"", "\"extra\"", "\"resized\"", "\"changed\"", "\"files_checked\"", "\"bytes_checked\"", "\"identical\":false"] {
                #expect(json.contains(key), "\(key) in \(json)")
            }
        }
    }

    @Test("a sidecar that is not the manifest's is refused")
    func wrongSidecar() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            var wrong = sealed.sidecar
            wrong[20] ^= 1
            let error = await #expect(throws: CheckpointError.self) {
                try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: wrong)
            }
            #expect(error?.description.contains("chunk sidecar") == true)
        }
    }

    @Test("a symlink planted after sealing fails verification loudly")
    func symlinkAfterSealing() async throws {
        try await withScratch { scratch in
            let sealed = try await Self.sealedThreeChunk(in: scratch)
            #expect(unlink(scratch.at("config.json")) == 0)
            #expect(symlink("/etc/hostname", scratch.at("config.json")) == 0)
            await #expect(throws: CheckpointError.self) {
                try await smallVerifier.verify(directory: scratch.path, manifest: sealed.manifest, sidecar: sealed.sidecar)
            }
        }
    }
}

@Suite("Diff")
struct DiffTests {
    static func file(_ path: String, _ size: Int64, _ seed: Character) -> ManifestFile {
        ManifestFile(path: path, size: size, root: String(repeating: seed, count: 64), crc32c: "00000000", role: .data)
    }

    static func manifest(_ files: [ManifestFile]) -> CheckpointManifest {
        CheckpointManifest(chunkSize: 1 << 20, files: files, chunks: SidecarReference(sha256: String(repeating: "0", count: 64), size: 16))
    }

    @Test("identical, changed, added, removed, and bytes already present under another name")
    func diff() throws {
        let a = Self.manifest([Self.file("base.bin", 1000, "a"), Self.file("opt.bin", 200, "b"), Self.file("old.bin", 30, "c"), Self.file("same.bin", 4, "d")])
        let b = Self.manifest([Self.file("renamed-base.bin", 1000, "a"), Self.file("opt.bin", 200, "e"), Self.file("new.bin", 7, "f"), Self.file("same.bin", 4, "d")])
        let diff = CheckpointDiff(from: a, to: b)
        #expect(diff.identical == ["same.bin"])
        #expect(diff.changed == ["opt.bin"])
        #expect(diff.added == ["new.bin", "renamed-base.bin"])
        #expect(diff.removed == ["base.bin", "old.bin"])
        #expect(diff.bytesAlreadyPresent == 1004)
        #expect(diff.bytesToMove == 207)
        let json = String(decoding: try JSONEncoder().encode(diff), as: UTF8.self)
        #expect(json.contains("\"bytes_already_present\":1004"))
        #expect(json.contains("\"bytes_to_move\":207"))

        let same = CheckpointDiff(from: a, to: a)
        #expect(same.identical.count == 4 && same.changed.isEmpty && same.added.isEmpty && same.removed.isEmpty)
        #expect(same.bytesToMove == 0 && same.bytesAlreadyPresent == 1234)
    }

    @Test("diff of real sealed directories: a renamed identical file costs nothing to move")
    func diffSealed() async throws {
        try await withScratch { scratch in
            let base = seededBytes(2 * mebibyte + 3, seed: 5)
            scratch.write("one/TERN_COMPLETE", "")
            scratch.write("one/base.bin", base)
            scratch.write("one/adapter.bin", "lora v1")
            scratch.write("two/TERN_COMPLETE", "")
            scratch.write("two/frozen/base.bin", base)
            scratch.write("two/adapter.bin", "lora v2")
            let one = try await smallSealer.seal(directory: scratch.at("one"))
            let two = try await smallSealer.seal(directory: scratch.at("two"))
            let diff = CheckpointDiff(from: one.manifest, to: two.manifest)
            #expect(diff.identical == ["TERN_COMPLETE"])
            #expect(diff.changed == ["adapter.bin"])
            #expect(diff.added == ["frozen/base.bin"])
            #expect(diff.removed == ["base.bin"])
            // The marker (empty) and the renamed base are already there; the adapter moves.
            #expect(diff.bytesAlreadyPresent == Int64(base.count))
            #expect(diff.bytesToMove == 7)
        }
    }

    @Test("a manifest built in code with a duplicate path does not trap")
    func duplicateInCode() {
        let a = Self.manifest([Self.file("x", 1, "a"), Self.file("x", 2, "b")])
        let diff = CheckpointDiff(from: a, to: a)
        #expect(diff.removed.isEmpty)
    }
}
