import Foundation
import Glibc
import Synchronization
import TernCheckpoints
import TernControl
import TernPostgres

/// A checkpoint named on the command line: a manifest file, or an id (prefix) in the database.
enum CheckpointReference: Sendable, Hashable {
    case file(String)
    case stored(String)

    /// A path to an existing file (or one that looks like a path: a `/` or `.json`) is a manifest
    /// file; otherwise the text must be an id or id prefix of at least 6 hex digits.
    static func classify(_ text: String) throws -> CheckpointReference {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                throw CommandFailure(message: "\(text) is a directory; give a manifest file (<id>.json) or a checkpoint id", exitCode: 2)
            }
            return .file(text)
        }
        if text.contains("/") || text.hasSuffix(".json") { return .file(text) }
        let hex = text.lowercased().utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
        if hex && text.utf8.count >= CheckpointRepository.minimumPrefixLength && text.utf8.count <= 64 { return .stored(text) }
        throw CommandFailure(
            message: "\"\(text)\" is neither a manifest file nor a checkpoint id (64 hex digits, or a unique prefix of at least \(CheckpointRepository.minimumPrefixLength))",
            exitCode: 2)
    }

    var needsDatabase: Bool {
        if case .stored = self { return true }
        return false
    }
}

/// A manifest loaded from a file or the database, checked: it parses, its id is its hash, and
/// the sidecar (when there is one) is the one it names.
struct LoadedCheckpoint: Sendable {
    var id: String
    var manifest: CheckpointManifest
    var manifestJSON: String
    var sidecar: [UInt8]?
    /// Set when it came from the database.
    var stored: StoredCheckpoint?
    /// Where it came from, for messages: the file's path, or "the database".
    var origin: String
}

enum CheckpointLoader {
    /// Loads every reference; the database is opened once, and only when some reference needs it.
    static func load(_ references: [CheckpointReference], database: DatabaseOptions,
                     migrations: MigrationsOptions) async throws -> [LoadedCheckpoint] {
        if !references.contains(where: \.needsDatabase) {
            return try references.map { reference in
                guard case .file(let path) = reference else { preconditionFailure("a stored reference without a database") }
                return try fromFile(path)
            }
        }
        return try await database.withPool(migrations: migrations) { pool in
            let repository = CheckpointRepository(pool: pool)
            var loaded: [LoadedCheckpoint] = []
            for reference in references {
                switch reference {
                case .file(let path): loaded.append(try fromFile(path))
                case .stored(let text): loaded.append(try await fromDatabase(text, repository: repository))
                }
            }
            return loaded
        }
    }

    static func fromDatabase(_ reference: String, repository: CheckpointRepository) async throws -> LoadedCheckpoint {
        let stored = try await storedCheckpoint(reference, repository: repository)
        return LoadedCheckpoint(id: stored.id, manifest: stored.manifest, manifestJSON: stored.manifestJSON, sidecar: stored.sidecar,
                                stored: stored, origin: "the database")
    }

    /// A manifest file; its sidecar is the file beside it with `.json` replaced by `.chunks`, if any.
    static func fromFile(_ path: String) throws -> LoadedCheckpoint {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(message: "\(path): no such manifest file (or it cannot be read)")
        }
        guard let text = String(validating: Array(data), as: UTF8.self) else {
            throw CommandFailure(message: "\(path): the manifest is not UTF-8 text")
        }
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.parse(text)
        } catch {
            throw CommandFailure(message: "\(path): \(error)")
        }
        let id = manifest.id
        // A file named for a checkpoint (<id>.json, as seal --output writes) must hold that one.
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        if stem.utf8.count == 64, stem.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }), stem != id {
            throw CommandFailure(message: "\(path) is named for checkpoint \(stem) but holds the manifest of \(id); it was renamed or altered")
        }
        var sidecar: [UInt8]?
        if path.hasSuffix(".json") {
            let sidecarPath = String(path.dropLast(".json".count)) + ".chunks"
            if let bytes = FileManager.default.contents(atPath: sidecarPath) {
                do {
                    _ = try ChunkSidecar.decode(Array(bytes), for: manifest)
                } catch {
                    throw CommandFailure(message: "\(sidecarPath): \(error)")
                }
                sidecar = Array(bytes)
            }
        }
        return LoadedCheckpoint(id: id, manifest: manifest, manifestJSON: manifest.canonicalJSON, sidecar: sidecar, stored: nil, origin: path)
    }
}

/// The stored checkpoint a user means; lookup problems become clear errors with exit code 1.
func storedCheckpoint(_ reference: String, repository: CheckpointRepository) async throws -> StoredCheckpoint {
    do {
        return try await repository.checkpoint(reference: reference)
    } catch let error as CheckpointLookupError {
        throw CommandFailure(message: error.description)
    } catch let error as CheckpointRepositoryError {
        throw CommandFailure(message: error.description)
    }
}

/// Writes `<id>.json` (the manifest's exact bytes, no newline, so `sha256sum <id>.json` prints
/// the id) and `<id>.chunks` into `directory`, creating it if needed. Returns both paths.
func writeManifestFiles(id: String, manifestJSON: String, sidecar: [UInt8], to directory: String) throws -> (manifest: String, sidecar: String) {
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let manifestPath = directory + "/" + id + ".json"
        let sidecarPath = directory + "/" + id + ".chunks"
        try Data(manifestJSON.utf8).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
        try Data(sidecar).write(to: URL(fileURLWithPath: sidecarPath), options: .atomic)
        return (manifestPath, sidecarPath)
    } catch {
        throw CommandFailure(message: "cannot write the manifest into \(directory): \(error.localizedDescription)")
    }
}

/// Shown ids: 12 hex digits, enough to pass back as CKPT while unique (at least 6 are needed).
func shortCheckpointID(_ id: String) -> String { String(id.prefix(12)) }

/// A byte count for people, in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
func byteText(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
    var value = Double(bytes) / 1024
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return String(format: "%.1f %@", value, units[unit])
}

/// A rate in decimal megabytes per second (as disks and networks are rated).
func rateText(bytes: Int64, seconds: Double) -> String {
    guard seconds > 0 else { return "-" }
    let rate = Double(bytes) / seconds / 1_000_000
    return rate >= 100 ? String(format: "%.0f MB/s", rate) : String(format: "%.1f MB/s", rate)
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Hashing progress on standard error: bytes done, percentage and rate.
///
/// On a terminal one line is rewritten in place (`\r`), at most 10 times a second, and cleared at
/// the end; with `--progress` and no terminal a line is written at most once a second. Without
/// `--progress` it is shown only on a terminal and only for inputs of 64 MiB or more (small
/// checkpoints hash in a blink). Called from the hashing threads, so its state is behind a lock.
final class ProgressReporter: Sendable {
    private let verb: String
    private let forced: Bool
    private let terminal: Bool
    private let start = ContinuousClock.now
    private let state = Mutex<(lastShown: Duration?, shownLength: Int)>((nil, 0))

    static let automaticThreshold: Int64 = 64 << 20

    init(verb: String, forced: Bool) {
        self.verb = verb
        self.forced = forced
        terminal = isatty(STDERR_FILENO) == 1
    }

    /// Whether a run of `total` bytes is shown at all.
    func shows(total: Int64) -> Bool { forced || (terminal && total >= Self.automaticThreshold) }

    var callback: (@Sendable (HashingProgress) -> Void)? {
        guard forced || terminal else { return nil }
        return { [self] progress in report(progress) }
    }

    func report(_ progress: HashingProgress) {
        report(done: progress.bytesDone, total: progress.bytesTotal)
    }

    /// Shows `done` of `total` bytes, the rate so far and, while unfinished, the time left at that rate.
    /// A `total` of 0 means unknown: then only the bytes so far and the rate are shown.
    func report(done bytesDone: Int64, total bytesTotal: Int64) {
        guard bytesTotal == 0 ? (forced || terminal) : shows(total: bytesTotal) else { return }
        let elapsed = ContinuousClock.now - start
        let done = bytesTotal > 0 && bytesDone >= bytesTotal
        state.withLock { state in
            let interval: Duration = terminal ? .milliseconds(100) : .seconds(1)
            if !done, let last = state.lastShown, elapsed - last < interval { return }
            state.lastShown = elapsed
            let percent = bytesTotal > 0 ? Int(Double(bytesDone) * 100 / Double(bytesTotal)) : 100
            var text = bytesTotal == 0
                ? "\(verb) \(byteText(bytesDone)), " + rateText(bytes: bytesDone, seconds: elapsed.seconds)
                : "\(verb) \(byteText(bytesDone)) of \(byteText(bytesTotal)) (\(percent)%), " + rateText(bytes: bytesDone, seconds: elapsed.seconds)
            let rate = Double(bytesDone) / max(elapsed.seconds, 0.001)
            if !done, bytesTotal > 0, bytesDone > 0, rate > 0 {
                text += ", \(Int((Double(bytesTotal - bytesDone) / rate).rounded(.up)))s left"
            }
            if terminal {
                let padding = String(repeating: " ", count: max(0, state.shownLength - text.count))
                FileHandle.standardError.write(Data("\r\(text)\(padding)".utf8))
                state.shownLength = text.count
            } else {
                FileHandle.standardError.write(Data("\(text)\n".utf8))
            }
        }
    }

    /// Clears the progress line on a terminal, so the result starts on a clean line.
    func finish() {
        state.withLock { state in
            guard terminal, state.shownLength > 0 else { return }
            FileHandle.standardError.write(Data("\r\(String(repeating: " ", count: state.shownLength))\r".utf8))
            state.shownLength = 0
        }
    }
}

/// The training step a directory's name ends in: `step_000100`, `iter_0000100`, `global_step100`,
/// `checkpoint-500` → 100, 100, 100, 500; nil when the name ends in no digits.
func stepFromDirectoryName(_ path: String) -> Int64? {
    CheckpointStep.number(fromDirectoryName: path)
}
