import Foundation
import Glibc
import TernCheckpoints
import TernCrypto

/// A scratch directory under /tmp, named with this process's id, removed by `remove()` (every
/// test calls it through `withScratch`) or at the latest when the value goes away.
final class Scratch: Sendable {
    let path: String

    init() {
        path = "/tmp/tern-ckt-\(getpid())-\(UUID().uuidString.prefix(13).lowercased())"
        precondition(mkdir(path, 0o755) == 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    }

    deinit { remove() }

    func remove() {
        _ = try? FileManager.default.removeItem(atPath: path)
    }

    /// `path/relative`.
    func at(_ relative: String) -> String { relative.isEmpty ? path : path + "/" + relative }

    /// Creates a directory (and its parents) under the scratch directory.
    func makeDirectory(_ relative: String) {
        var built = path
        for component in relative.split(separator: "/") {
            built += "/" + component
            if mkdir(built, 0o755) != 0 && errno != EEXIST {
                preconditionFailure("cannot create \(built): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes `bytes` to `relative` with the exact UTF-8 bytes of the name (no normalisation),
    /// creating parent directories.
    func write(_ relative: String, _ bytes: [UInt8]) {
        if let slash = relative.lastIndex(of: "/") { makeDirectory(String(relative[..<slash])) }
        writeFile(at(relative), bytes)
    }

    func write(_ relative: String, _ text: String) { write(relative, Array(text.utf8)) }

    func read(_ relative: String) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: at(relative)) else { preconditionFailure("cannot read \(relative)") }
        return Array(data)
    }
}

/// Runs `body` with a fresh scratch directory and removes it afterwards, whatever happens.
func withScratch<T>(_ body: (Scratch) async throws -> T) async rethrows -> T {
    let scratch = Scratch()
    defer { scratch.remove() }
    return try await body(scratch)
}

/// Writes `bytes` to an absolute path, creating or truncating the file.
func writeFile(_ path: String, _ bytes: [UInt8]) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(descriptor >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
    defer { close(descriptor) }
    var written = 0
    bytes.withUnsafeBytes { raw in
        while written < raw.count {
            let count = Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
            precondition(count > 0, "cannot write \(path): \(String(cString: strerror(errno)))")
            written += count
        }
    }
}

/// Overwrites one byte of a file in place (the size stays the same).
func overwriteByte(at offset: Int64, of path: String, with value: UInt8) {
    let descriptor = open(path, O_WRONLY | O_CLOEXEC)
    precondition(descriptor >= 0, "cannot open \(path)")
    defer { close(descriptor) }
    var byte = value
    precondition(pwrite(descriptor, &byte, 1, off_t(offset)) == 1)
}

/// Deterministic pseudo-random bytes (SplitMix64), so tests reproduce exactly.
func seededBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let take = min(8, count - offset)
            withUnsafeBytes(of: z.littleEndian) { word in
                raw.baseAddress!.advanced(by: offset).copyMemory(from: word.baseAddress!, byteCount: take)
            }
            offset += take
        }
    }
    return bytes
}

let mebibyte = 1 << 20

/// The engines the tests use: 1 MiB chunks keep multi-chunk files small.
let smallChunks = HashingEngine(chunkSize: Int64(mebibyte))
let smallSealer = CheckpointSealer(engine: smallChunks)
let smallVerifier = CheckpointVerifier(engine: smallChunks)

/// Eight lower-case hex digits, as the manifest writes a CRC32C.
func hex8(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}

/// Big-endian bytes of a UInt64, written out by hand for the test vectors.
func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((value >> UInt64(shift)) & 0xFF)) }
    return bytes
}

extension VerificationReport {
    /// "path: start..<end,start..<end" per changed file (no ranges: the file is reported whole).
    var changedSummary: [String] {
        changed.map { file in "\(file.path): " + file.ranges.map { "\($0.start)..<\($0.end)" }.joined(separator: ",") }
    }

    /// "path: expected -> found" per resized file.
    var resizedSummary: [String] { resized.map { "\($0.path): \($0.expected) -> \($0.found)" } }
}
