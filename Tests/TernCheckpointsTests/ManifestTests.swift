import Foundation
import TernCheckpoints
import TernCrypto
import Testing

@Suite("Manifest")
struct ManifestTests {
    static let rootA = String(repeating: "ab", count: 32)
    static let rootB = String(repeating: "cd", count: 32)
    static let sidecarHash = String(repeating: "0f", count: 32)

    /// One file entry, in canonical form.
    static func entry(path: String = "a.bin", size: String = "5", root: String = rootA, crc: String = "0a1b2c3d", role: String = "data") -> String {
        #"{"crc32c":"\#(crc)","path":"\#(path)","role":"\#(role)","root":"\#(root)","size":\#(size)}"#
    }

    /// A whole manifest in canonical form; the defaults make a valid one (one 5-byte file, one chunk).
    static func text(files: [String] = [entry()], chunkSize: String = "1048576", sidecarHash: String = sidecarHash,
                     sidecarSize: String = "48", format: String = "tern-manifest/v1") -> String {
        #"{"chunk_size":\#(chunkSize),"chunks":{"sha256":"\#(sidecarHash)","size":\#(sidecarSize)},"files":[\#(files.joined(separator: ","))],"format":"\#(format)"}"#
    }

    @Test("a canonical manifest parses, with or without one trailing newline, and re-encodes to the same bytes")
    func validParses() throws {
        let manifest = try CheckpointManifest.parse(Self.text())
        #expect(manifest.files == [ManifestFile(path: "a.bin", size: 5, root: Self.rootA, crc32c: "0a1b2c3d", role: .data)])
        #expect(manifest.chunkSize == 1 << 20)
        #expect(manifest.canonicalJSON == Self.text())
        #expect(manifest.id == SHA256.hash(Self.text()).hex)
        #expect(try CheckpointManifest.parse(Self.text() + "\n") == manifest)
        let two = Self.text(files: [Self.entry(path: "a.bin"), Self.entry(path: "b/c.bin", size: "0", role: "marker")])
        #expect(try CheckpointManifest.parse(two).files.map(\.role) == [.data, .marker])
    }

    @Test("hostile paths are refused", arguments: ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a/", "", "a\\\\b", "e\\u0301", "../\u{301}x", "/\u{301}x", "a\\u0000b", "a\\nb"])
    func hostilePath(path: String) {
        let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(Self.text(files: [Self.entry(path: path)])) }
        #expect(error?.description.contains("unsafe path") == true, "\(String(describing: error))")
    }

    @Test("a path listed twice is refused")
    func duplicatePath() {
        let text = Self.text(files: [Self.entry(path: "a.bin"), Self.entry(path: "a.bin", root: Self.rootB)], sidecarSize: "80")
        let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(text) }
        #expect(error?.description.contains("twice") == true)
    }

    @Test("files out of order are refused (the id must be unique)")
    func unsortedFiles() {
        let text = Self.text(files: [Self.entry(path: "b.bin"), Self.entry(path: "a.bin")], sidecarSize: "80")
        let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(text) }
        #expect(error?.description.contains("canonical") == true)
        // Sorted by bytes: "Z" (0x5A) before "a" (0x61), "a" before "\u{E9}".
        let sorted = Self.text(files: [Self.entry(path: "Z"), Self.entry(path: "a"), Self.entry(path: "\u{E9}")], sidecarSize: "112")
        #expect(throws: Never.self) { try CheckpointManifest.parse(sorted) }
    }

    @Test("text that is not canonical is refused", arguments: [
        #"{"chunk_size": 1048576,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest/v1"}"#,
        #"{"chunks":{"sha256":"SIDECAR","size":48},"chunk_size":1048576,"files":[FILE],"format":"tern-manifest/v1"}"#,
        #"{"chunk_size":1048576,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest/v1","host":"gpu-1"}"#,
        #"{"chunk_size":1048576.0,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest/v1"}"#,
        #"{"chunk_size":1048576,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest\/v1"}"#,
        #" {"chunk_size":1048576,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest/v1"}"#,
        "{\n  \"chunk_size\" : 1048576,\"chunks\":{\"sha256\":\"SIDECAR\",\"size\":48},\"files\":[FILE],\"format\":\"tern-manifest/v1\"}",
        #"{"chunk_size":1048576,"chunks":{"sha256":"SIDECAR","size":48},"files":[FILE],"format":"tern-manifest/v1"}"# + "\n\n",
    ])
    func nonCanonical(template: String) {
        let text = template.replacingOccurrences(of: "SIDECAR", with: Self.sidecarHash).replacingOccurrences(of: "FILE", with: Self.entry())
        let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(text) }
        #expect(error?.description.contains("canonical") == true, "\(String(describing: error))")
    }

    @Test("an escaped name that decodes to a valid path is still not canonical")
    func escapedPath() {
        let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(Self.text(files: [Self.entry(path: #"\u0061.bin"#)])) }
        #expect(error?.description.contains("canonical") == true)
    }

    @Test("malformed values are refused")
    func malformedValues() {
        let cases: [(String, String)] = [
            (Self.text(format: "tern-manifest/v2"), "format"),
            (Self.text(chunkSize: "0"), "chunk_size"),
            (Self.text(chunkSize: "1024"), "chunk_size"),
            (Self.text(chunkSize: "8589934592"), "chunk_size"),
            (Self.text(files: [Self.entry(size: "-1")]), "negative size"),
            (Self.text(files: [Self.entry(root: Self.rootA.uppercased())]), "malformed root"),
            (Self.text(files: [Self.entry(root: String(repeating: "\u{FF41}", count: 64))]), "malformed root"),  // full-width "a"
            (Self.text(files: [Self.entry(root: String(Self.rootA.dropLast()))]), "malformed root"),
            (Self.text(files: [Self.entry(root: String(Self.rootA.dropLast()) + "g")]), "malformed root"),
            (Self.text(files: [Self.entry(crc: "0a1b2c3")]), "malformed crc32c"),
            (Self.text(files: [Self.entry(crc: "0A1B2C3D")]), "malformed crc32c"),
            (Self.text(sidecarHash: "xyz"), "sha256"),
            (Self.text(sidecarSize: "16"), "chunk sidecar of 16 bytes"),
            (Self.text(files: [Self.entry(role: "weights")]), "not a tern manifest"),
            (Self.text(files: [Self.entry(size: "\"5\"")]), "not a tern manifest"),
            ("not json", "not a tern manifest"),
            (#"{"format":"tern-manifest/v1"}"#, "not a tern manifest"),
        ]
        for (text, reason) in cases {
            let error = #expect(throws: ManifestError.self) { try CheckpointManifest.parse(text) }
            #expect(error?.description.contains(reason) == true, "\(text): \(String(describing: error))")
        }
    }

    @Test("a sealed manifest survives parse, and its sidecar decodes")
    func sealedRoundTrip() async throws {
        try await withScratch { scratch in
            writeGoldenCheckpoint(into: scratch)
            scratch.write("big.bin", seededBytes(2 * mebibyte + 1, seed: 9))
            let sealed = try await smallSealer.seal(directory: scratch.path)
            let parsed = try CheckpointManifest.parse(sealed.manifestJSON)
            #expect(parsed == sealed.manifest)
            #expect(parsed.id == sealed.id)
            let chunks = try ChunkSidecar.decode(sealed.sidecar, for: parsed)
            #expect(chunks.map(\.count) == parsed.files.map { parsed.chunkCount(ofSize: $0.size) })
            #expect(parsed.totalChunks == 3 + 5)
        }
    }

    @Test("a wrong, damaged or inconsistent sidecar is refused by decode")
    func hostileSidecar() async throws {
        try await withScratch { scratch in
            scratch.write("TERN_COMPLETE", "")
            scratch.write("a.bin", seededBytes(mebibyte + 1, seed: 1))
            let sealed = try await smallSealer.seal(directory: scratch.path)
            let good = sealed.sidecar
            #expect(good.count == 16 + 2 * 32)

            // Another checkpoint's sidecar, a flipped bit, a truncated one: not the one named.
            for bad in [Array(good.dropLast()), good + [0], { var b = good; b[40] ^= 4; return b }(), Array(good.prefix(16))] {
                let error = #expect(throws: ManifestError.self) { try ChunkSidecar.decode(bad, for: sealed.manifest) }
                #expect(error?.description.contains("is not it") == true)
            }

            // A manifest built to name a sidecar whose own contents are inconsistent.
            func named(_ bytes: [UInt8]) -> CheckpointManifest {
                var manifest = sealed.manifest
                manifest.chunks = SidecarReference(sha256: SHA256.hash(bytes).hex, size: Int64(bytes.count))
                return manifest
            }
            var badMagic = good
            badMagic[0] = UInt8(ascii: "X")
            let magicError = #expect(throws: ManifestError.self) { try ChunkSidecar.decode(badMagic, for: named(badMagic)) }
            #expect(magicError?.description.contains("TERNCHK1") == true)

            var badCount = good
            badCount[15] = 3
            let countError = #expect(throws: ManifestError.self) { try ChunkSidecar.decode(badCount, for: named(badCount)) }
            #expect(countError?.description.contains("digests") == true)

            let short = Array(good.dropLast(32))
            #expect(throws: ManifestError.self) { try ChunkSidecar.decode(short, for: named(short)) }
            let long = good + [UInt8](repeating: 0, count: 32)
            #expect(throws: ManifestError.self) { try ChunkSidecar.decode(long, for: named(long)) }
            let tiny = Array(good.prefix(10))
            #expect(throws: ManifestError.self) { try ChunkSidecar.decode(tiny, for: named(tiny)) }

            #expect(try ChunkSidecar.decode(good, for: sealed.manifest).map(\.count) == [0, 2])
        }
    }

    @Test("the manifest holds only facts about the bytes")
    func noHostFacts() async throws {
        try await withScratch { scratch in
            writeGoldenCheckpoint(into: scratch)
            let sealed = try await smallSealer.seal(directory: scratch.path)
            #expect(!sealed.manifestJSON.contains(scratch.path))
            #expect(!sealed.manifestJSON.contains("tmp"))
            let keys = Set(["chunk_size", "chunks", "files", "format", "sha256", "size", "crc32c", "path", "role", "root"])
            let object = try JSONSerialization.jsonObject(with: Data(sealed.manifestJSON.utf8)) as? [String: Any]
            let found = Set((object ?? [:]).keys)
            #expect(found.isSubset(of: keys))
            #expect(!sealed.manifestJSON.contains(" "))
        }
    }
}
