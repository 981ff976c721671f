import ArgumentParser
import Foundation
import TernCheckpoints
import TernModel
import TernStorage
import TernControl
import TernPostgres

/// `tern checkpoint verify DIR --manifest FILE|CKPT`
struct CheckpointVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a directory against a checkpoint's manifest, or a checkpoint's copy on a store.",
        discussion: """
            tern checkpoint verify DIR --manifest FILE|CKPT: every file of DIR is hashed again. Prints \
            OK when DIR holds exactly the checkpoint (exit code 0); otherwise every missing, extra, \
            resized and changed file (exit code 1), a changed file with the exact byte ranges \
            [start, end) of its 64 MiB chunks that differ. FILE is a manifest (<id>.json); its chunk \
            sidecar is read from the same path with .json replaced by .chunks when that file exists \
            (without it a changed file is reported whole). CKPT is an id or a unique prefix of one, \
            read from the database.

            tern checkpoint verify CKPT --on TARGET|URL [--deep]: checks the copy on a store: the \
            commit marker, the manifest, and every file's size, version and store checksum (level L1); \
            with --deep every byte is read back and compared chunk by chunk (L2). A copy that fails is \
            demoted: its commit marker is deleted and its replica marked corrupt, so no job resumes \
            from it (a later push repairs it). Exit code 1 when the copy is not consistent.
            """)

    @Argument(help: ArgumentHelp("The directory to check, or with --on the checkpoint id (prefix).", valueName: "dir|ckpt")) var subject: String
    @Option(help: ArgumentHelp("A manifest file, or a checkpoint id or unique prefix.", valueName: "file|ckpt")) var manifest: String?
    @Option(help: ArgumentHelp("Check the copy on this target or store URL instead of a directory.", valueName: "target|url")) var on: String?
    @Flag(help: "With --on, read every byte back from the store (level L2).") var deep = false
    @Flag(help: "Show progress on standard error even when it is not a terminal.") var progress = false
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var access: StoreAccessOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        if on == nil && manifest == nil { throw ValidationError("give --manifest FILE|CKPT to check a directory, or --on TARGET|URL to check a store's copy") }
        if on != nil && manifest != nil { throw ValidationError("--on checks a stored copy of CKPT; --manifest is for checking a directory") }
        if on == nil && deep { throw ValidationError("--deep goes with --on (a directory is always read whole)") }
    }

    func run() async throws {
        if let on {
            try await verifyOnStore(on)
            return
        }
        let directory = subject
        let reference = try CheckpointReference.classify(manifest!)
        guard let checkpoint = try await CheckpointLoader.load([reference], database: database, migrations: migrations).first else { return }
        let reporter = ProgressReporter(verb: "verifying", forced: progress)
        let report: VerificationReport
        do {
            report = try await CheckpointVerifier().verify(directory: directory, manifest: checkpoint.manifest, sidecar: checkpoint.sidecar,
                                                           progress: reporter.callback)
        } catch {
            reporter.finish()
            throw CommandFailure(message: error.description)
        }
        reporter.finish()
        if json {
            try printJSON(report, convertKeys: false)
        } else {
            print(Self.text(report, directory: directory, hasSidecar: checkpoint.sidecar != nil))
        }
        if !report.isIdentical { throw ExitCode(1) }
    }

    private func verifyOnStore(_ destination: String) async throws {
        let consistent = try await database.withPool(migrations: migrations) { pool -> Bool in
            let stored = try await storedCheckpoint(subject, repository: CheckpointRepository(pool: pool))
            let sealed = SealedCheckpoint(manifest: stored.manifest, manifestJSON: stored.manifestJSON, sidecar: stored.sidecar,
                                          format: JobSpec.CheckpointFormat(rawValue: stored.format) ?? .marker)
            let selected = try await SelectedStore.open(destination, access: access, pool: pool)
            let journal = ReplicaRepository(pool: pool).journal(checkpointID: sealed.id, store: selected.url, target: selected.target,
                                                                replicator: replicatorName(), isAbandoned: replicatorIsGone)
            let result: ReplicaVerification
            do {
                result = try await withTransferProgress(verb: "reading back", total: deep ? sealed.totalBytes : 0, forced: progress && deep) { transfer in
                    try await Replicator(store: selected.store, progress: transfer).verify(sealed, journal: journal, deep: deep)
                }
                if !result.problems.isEmpty && result.committed {
                    try await Replicator(store: selected.store).demote(sealed.id, journal: journal, reason: result.problems.map(\.description).joined(separator: "; "))
                } else if result.isConsistent && deep {
                    // Promote to L2 under a claim, like any other write to the replica.
                    _ = try await journal.claim()
                    try await journal.transition(to: .committed, level: .l2, error: nil)
                    await journal.release()
                }
            } catch let error as StoreError {
                throw CommandFailure(message: error.description)
            }
            if json {
                try printJSON(result, convertKeys: false)
            } else if result.isConsistent {
                print("OK: \(sealed.id) is consistent on \(selected.target ?? selected.url.description) at \(result.level.rawValue) (\(result.filesChecked) objects\(deep ? ", \(byteText(result.bytesRead)) read back" : ""))")
            } else {
                var lines = ["NOT CONSISTENT: \(sealed.id) on \(selected.target ?? selected.url.description):"]
                if !result.committed { lines.append("  not committed (no commit marker)") }
                for problem in result.problems { lines.append("  \(problem)") }
                if !result.problems.isEmpty && result.committed { lines.append("demoted: the commit marker was removed and the replica marked corrupt; `tern checkpoint push` repairs it") }
                print(lines.joined(separator: "\n"))
            }
            return result.isConsistent
        }
        if !consistent { throw ExitCode(1) }
    }

    static func text(_ report: VerificationReport, directory: String, hasSidecar: Bool) -> String {
        if report.isIdentical {
            return "OK: \(directory) matches checkpoint \(report.checkpointID) (\(report.filesChecked) files, \(byteText(report.bytesChecked)) re-read)"
        }
        var rows: [[String]] = []
        for path in report.missing { rows.append(["  missing", path]) }
        for path in report.extra { rows.append(["  extra", path]) }
        for file in report.resized { rows.append(["  resized", "\(file.path): \(file.expected) bytes expected, \(file.found) found"]) }
        for file in report.changed {
            let ranges = file.ranges.isEmpty
                ? (hasSidecar ? "content differs" : "content differs (no chunk sidecar: ranges unknown)")
                : file.ranges.map(\.description).joined(separator: ", ")
            rows.append(["  changed", "\(file.path): \(ranges)"])
        }
        let problems = report.missing.count + report.extra.count + report.resized.count + report.changed.count
        return "DIFFERENT: \(directory) does not match checkpoint \(report.checkpointID) (\(problems) file\(problems == 1 ? " differs" : "s differ")):\n"
            + formatTable(rows)
    }
}

/// `tern checkpoint show CKPT`
struct CheckpointShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a checkpoint: its facts, the jobs that recorded it, and its files.",
        discussion: """
            CKPT is a checkpoint id, a unique prefix of at least 6 hex digits, or a manifest file. \
            The stored manifest is checked on the way out (its SHA-256 is the id, the sidecar is the \
            one it names). --output writes <id>.json and <id>.chunks, exactly as seal --output does.
            """)

    @Argument(help: ArgumentHelp("A checkpoint id, a unique prefix of one, or a manifest file.", valueName: "ckpt")) var checkpoint: String
    @Option(help: ArgumentHelp("Also write <id>.json and <id>.chunks into this directory.", valueName: "dir")) var output: String?
    @Flag(help: "Print the checkpoint as JSON (with its whole manifest).") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        let reference = try CheckpointReference.classify(checkpoint)
        if reference.needsDatabase {
            try await database.withPool(migrations: migrations) { pool in
                let loaded = try await CheckpointLoader.fromDatabase(checkpoint, repository: CheckpointRepository(pool: pool))
                try show(loaded, now: try await JobRepository(pool: pool).databaseNow())
            }
        } else {
            try show(try CheckpointLoader.fromFile(checkpoint), now: nil)
        }
    }

    private func show(_ loaded: LoadedCheckpoint, now: Date?) throws {
        if let output {
            guard let sidecar = loaded.sidecar else {
                throw CommandFailure(message: "\(loaded.origin) has no chunk sidecar beside it; nothing to write to \(output)")
            }
            let written = try writeManifestFiles(id: loaded.id, manifestJSON: loaded.manifestJSON, sidecar: sidecar, to: output)
            if !json { print("wrote \(written.manifest), \(written.sidecar)") }
        }
        let manifest = loaded.manifest
        let stored = loaded.stored
        if json {
            try printJSON(ShowCheckpointJSON(
                id: loaded.id, format: stored?.format, files: manifest.files.count, bytes: manifest.totalBytes, createdAt: stored?.createdAt,
                jobs: (stored?.jobs ?? []).map(CheckpointJobJSON.init), manifest: manifest), convertKeys: false)
            return
        }
        let markers = manifest.files.filter { $0.role == .marker }.count
        var lines: [[String]] = [
            ["id:", loaded.id],
            ["format:", stored?.format ?? "- (not in the manifest; recorded when sealed)"],
            ["files:", "\(manifest.files.count)" + (markers > 0 ? " (\(markers) marker\(markers == 1 ? "" : "s"))" : "")],
            ["bytes:", "\(byteText(manifest.totalBytes)) (\(manifest.totalBytes))"],
            ["chunks:", "\(manifest.totalChunks) of \(byteText(manifest.chunkSize)); sidecar \(manifest.chunks.size) bytes, sha256 \(manifest.chunks.sha256)"],
        ]
        if let stored, let now {
            lines.append(["sealed:", "\(relativeTime(stored.createdAt, now: now)) (\(stored.createdAt.formatted(.iso8601)))"])
            if stored.jobs.isEmpty {
                lines.append(["jobs:", "none (sealed without --job)"])
            }
            for (index, link) in stored.jobs.enumerated() {
                lines.append([index == 0 ? "jobs:" : "", "\(shortID(link.jobID)) \(link.jobName), step \(link.step)"])
            }
        } else {
            lines.append(["source:", loaded.origin])
        }
        print(formatTable(lines))
        print("")
        let rows = manifest.files.map { file in
            [file.path, byteText(file.size), file.role.rawValue, String(file.root.prefix(16)), file.crc32c]
        }
        print(formatTable([["PATH", "SIZE", "ROLE", "ROOT", "CRC32C"]] + rows))
    }
}

/// The JSON shape of `tern checkpoint show --json`. Documented in docs/cli.md.
struct ShowCheckpointJSON: Encodable {
    var id: String
    var format: String?
    var files: Int
    var bytes: Int64
    var createdAt: Date?
    var jobs: [CheckpointJobJSON]
    var manifest: CheckpointManifest

    enum CodingKeys: String, CodingKey {
        case id, format, files, bytes, jobs, manifest
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(format, forKey: .format)
        try container.encode(files, forKey: .files)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(jobs, forKey: .jobs)
        try container.encode(manifest, forKey: .manifest)
    }
}

/// `tern checkpoint diff A B`
struct CheckpointDiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two checkpoints file by file, and count the bytes that would not need to move.",
        discussion: """
            A and B are checkpoint ids, unique prefixes, or manifest files. Each file of B is \
            identical (same path, same content), changed (same path, other content) or added; files \
            only in A are removed. Bytes already present are B's files whose content (root) A has \
            under any name: copying B where A is sends only the rest (bytes to move). The exit code \
            is 0 whether or not they differ.
            """)

    @Argument(help: ArgumentHelp("The older checkpoint.", valueName: "a")) var from: String
    @Argument(help: ArgumentHelp("The newer checkpoint.", valueName: "b")) var to: String
    @Flag(help: "Print the comparison as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        let references = [try CheckpointReference.classify(from), try CheckpointReference.classify(to)]
        let loaded = try await CheckpointLoader.load(references, database: database, migrations: migrations)
        let (a, b) = (loaded[0], loaded[1])
        let diff = CheckpointDiff(from: a.manifest, to: b.manifest)
        if json {
            try printJSON(DiffJSON(from: a.id, to: b.id, diff: diff), convertKeys: false)
            return
        }
        print("from \(shortCheckpointID(a.id))  \(a.manifest.files.count) files, \(byteText(a.manifest.totalBytes))")
        print("to   \(shortCheckpointID(b.id))  \(b.manifest.files.count) files, \(byteText(b.manifest.totalBytes))")
        var rows: [[String]] = []
        for path in diff.changed { rows.append(["  changed", path]) }
        for path in diff.added { rows.append(["  added", path]) }
        for path in diff.removed { rows.append(["  removed", path]) }
        if !rows.isEmpty { print(formatTable(rows)) }
        print("\(diff.identical.count) identical, \(diff.changed.count) changed, \(diff.added.count) added, \(diff.removed.count) removed")
        print("bytes already present: \(byteText(diff.bytesAlreadyPresent)) (\(diff.bytesAlreadyPresent)); "
            + "bytes to move: \(byteText(diff.bytesToMove)) (\(diff.bytesToMove))")
    }
}

/// The JSON shape of `tern checkpoint diff --json`. Documented in docs/cli.md.
struct DiffJSON: Encodable {
    var from: String
    var to: String
    var diff: CheckpointDiff

    enum CodingKeys: String, CodingKey {
        case from, to, identical, changed, added, removed
        case bytesAlreadyPresent = "bytes_already_present"
        case bytesToMove = "bytes_to_move"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(diff.identical, forKey: .identical)
        try container.encode(diff.changed, forKey: .changed)
        try container.encode(diff.added, forKey: .added)
        try container.encode(diff.removed, forKey: .removed)
        try container.encode(diff.bytesAlreadyPresent, forKey: .bytesAlreadyPresent)
        try container.encode(diff.bytesToMove, forKey: .bytesToMove)
    }
}
