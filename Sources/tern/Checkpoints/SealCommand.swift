import ArgumentParser
import Foundation
import Glibc
import TernCheckpoints
import TernControl
import TernModel
import TernPostgres

/// `tern checkpoint seal DIR`
struct CheckpointSealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Hash a complete step directory into a manifest and record it.",
        discussion: """
            DIR must be complete by its framework's own signal (TERN_COMPLETE, torch DCP's .metadata, \
            Orbax's commit_success.txt, the Megatron tracker or DeepSpeed's latest beside it); an \
            incomplete directory is refused and the missing marker named. Only regular files and \
            directories may be in it: a symbolic link, device, FIFO or socket is refused by name. \
            Every file is read once, its 64 MiB chunks hashed in parallel.

            The checkpoint is recorded in the database (sealing the same bytes again stores nothing \
            and gives the same id); with --job it is also linked to that job at --step (default: the \
            number DIR's name ends in, as in step_000100 or iter_0000100). --no-record only hashes, \
            like sha256sum: no database is needed. --output writes <id>.json (the manifest's exact \
            bytes, so `sha256sum <id>.json` prints the id) and <id>.chunks (the chunk sidecar).
            """)

    @Argument(help: ArgumentHelp("The step directory.", valueName: "dir")) var directory: String
    @Option(help: ArgumentHelp("How completeness is decided: \(JobSpec.CheckpointFormat.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "format"))
    var format = "auto"
    @Option(help: ArgumentHelp("Link the checkpoint to this job (id, id prefix or name prefix).", valueName: "job")) var job: String?
    @Option(help: ArgumentHelp("The training step the checkpoint holds (with --job).", valueName: "n")) var step: Int64?
    @Option(help: ArgumentHelp("Also write <id>.json and <id>.chunks into this directory.", valueName: "dir")) var output: String?
    @Flag(name: .customLong("no-record"), help: "Only hash; do not record the checkpoint (no database is used).") var noRecord = false
    @Flag(help: "Show hashing progress on standard error even when it is not a terminal.") var progress = false
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    var checkpointFormat: JobSpec.CheckpointFormat { JobSpec.CheckpointFormat(rawValue: format) ?? .auto }

    func validate() throws {
        if JobSpec.CheckpointFormat(rawValue: format) == nil {
            throw ValidationError("unknown format \"\(format)\"; expected one of \(JobSpec.CheckpointFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if noRecord && job != nil { throw ValidationError("--no-record and --job exclude each other: linking to a job needs the database") }
        if step != nil && job == nil { throw ValidationError("--step needs --job: a step is a job's") }
        if let step, step < 0 { throw ValidationError("--step must be 0 or more") }
        if job != nil && step == nil && stepFromDirectoryName(directory) == nil {
            throw ValidationError("give --step: the name of \(directory) does not end in a step number")
        }
    }

    func run() async throws {
        if noRecord {
            try report(try await seal(), outcome: nil, jobRecord: nil)
            return
        }
        try await database.withPool(migrations: migrations) { pool in
            // The job is found before hashing: a typo should not cost a pass over a terabyte.
            var jobRecord: JobRecord?
            if let job { jobRecord = try await resolveJob(job, repository: JobRepository(pool: pool)) }
            let sealed = try await seal()
            let outcome: RecordOutcome
            do {
                outcome = try await CheckpointRepository(pool: pool).record(
                    sealed.checkpoint, job: jobRecord?.id, step: jobRecord == nil ? nil : step ?? stepFromDirectoryName(directory), attempt: nil)
            } catch let error as CheckpointRepositoryError {
                throw CommandFailure(message: error.description)
            }
            try report(sealed, outcome: outcome, jobRecord: jobRecord)
        }
    }

    struct Sealed {
        var checkpoint: SealedCheckpoint
        var seconds: Double
        var written: (manifest: String, sidecar: String)?
    }

    private func seal() async throws -> Sealed {
        let reporter = ProgressReporter(verb: "hashing", forced: progress)
        let start = ContinuousClock.now
        let sealed: SealedCheckpoint
        do {
            sealed = try await CheckpointSealer().seal(directory: directory, format: checkpointFormat, progress: reporter.callback)
        } catch {
            reporter.finish()
            throw CommandFailure(message: error.description)
        }
        reporter.finish()
        let seconds = (ContinuousClock.now - start).seconds
        // Written before recording, so the manifest survives a database that is down.
        let written = try output.map { try writeManifestFiles(id: sealed.id, manifestJSON: sealed.manifestJSON, sidecar: sealed.sidecar, to: $0) }
        return Sealed(checkpoint: sealed, seconds: seconds, written: written)
    }

    private func report(_ sealed: Sealed, outcome: RecordOutcome?, jobRecord: JobRecord?) throws {
        let checkpoint = sealed.checkpoint
        let files = checkpoint.manifest.files
        if json {
            try printJSON(SealJSON(
                id: checkpoint.id, files: files.count, bytes: checkpoint.totalBytes, format: checkpoint.format.rawValue,
                seconds: sealed.seconds, bytesPerSecond: sealed.seconds > 0 ? Double(checkpoint.totalBytes) / sealed.seconds : nil,
                recorded: outcome != nil, newlyStored: outcome?.newlyStored, jobID: jobRecord?.id.uuidString.lowercased(),
                step: outcome?.step, manifestPath: sealed.written?.manifest, sidecarPath: sealed.written?.sidecar), convertKeys: false)
            return
        }
        let markers = files.filter { $0.role == .marker }.count
        var lines: [[String]] = [
            ["id:", checkpoint.id],
            ["files:", "\(files.count)" + (markers > 0 ? " (\(markers) marker\(markers == 1 ? "" : "s"))" : "")],
            ["bytes:", "\(byteText(checkpoint.totalBytes)) (\(checkpoint.totalBytes))"],
            ["format:", checkpoint.format.rawValue],
            ["time:", String(format: "%.2f s", sealed.seconds) + " (\(rateText(bytes: checkpoint.totalBytes, seconds: sealed.seconds)))"],
        ]
        switch outcome?.newlyStored {
        case true?: lines.append(["recorded:", "new checkpoint"])
        case false?: lines.append(["recorded:", "already stored (these bytes were sealed before)"])
        case nil: lines.append(["recorded:", "no (--no-record)"])
        }
        if let jobRecord, let outcome, let step = outcome.step {
            lines.append(["job:", "\(shortID(jobRecord.id)) \(jobRecord.name), step \(step)" + (outcome.newlyLinked ? "" : " (already linked)")])
        }
        if let written = sealed.written {
            lines.append(["wrote:", "\(written.manifest), \(written.sidecar)"])
        }
        print(formatTable(lines))
    }
}

/// The JSON shape of `tern checkpoint seal --json`. Documented in docs/cli.md.
struct SealJSON: Encodable {
    var id: String
    var files: Int
    var bytes: Int64
    var format: String
    var seconds: Double
    var bytesPerSecond: Double?
    var recorded: Bool
    var newlyStored: Bool?
    var jobID: String?
    var step: Int64?
    var manifestPath: String?
    var sidecarPath: String?

    enum CodingKeys: String, CodingKey {
        case id, files, bytes, format, seconds, recorded, step
        case bytesPerSecond = "bytes_per_second"
        case newlyStored = "newly_stored"
        case jobID = "job_id"
        case manifestPath = "manifest_path"
        case sidecarPath = "sidecar_path"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(files, forKey: .files)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(format, forKey: .format)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(bytesPerSecond, forKey: .bytesPerSecond)
        try container.encode(recorded, forKey: .recorded)
        try container.encode(newlyStored, forKey: .newlyStored)
        try container.encode(jobID, forKey: .jobID)
        try container.encode(step, forKey: .step)
        try container.encode(manifestPath, forKey: .manifestPath)
        try container.encode(sidecarPath, forKey: .sidecarPath)
    }
}

/// `tern checkpoint commit DIR`
struct CheckpointCommitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Mark a step directory complete by writing Tern's marker file TERN_COMPLETE into it.",
        discussion: """
            For jobs that cannot write the marker themselves: run it after the job has finished \
            writing DIR. Every file in DIR is flushed to disk first, then TERN_COMPLETE (empty, so \
            every commit writes the same bytes) is written to a temporary file, flushed, renamed \
            into place and the directory flushed: after a crash DIR either has the marker with all \
            its data durable, or no marker. A directory that already has TERN_COMPLETE is left as \
            it is. Symbolic links and special files are refused, as seal refuses them.
            """)

    @Argument(help: ArgumentHelp("The step directory.", valueName: "dir")) var directory: String

    static let temporaryName = ".TERN_COMPLETE.tmp"

    func run() async throws {
        let marker = directory + "/" + Completeness.ternMarker
        var info = stat()
        if lstat(marker, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw CommandFailure(message: "\(marker) exists but is not a regular file; remove it and commit again")
            }
            print("\(directory) is already committed (\(Completeness.ternMarker) exists); nothing written")
            return
        }
        // A temporary file left by an interrupted commit is not part of the checkpoint.
        unlink(directory + "/" + Self.temporaryName)
        let files: [ScannedFile]
        do {
            files = try DirectoryScan.files(in: directory)
        } catch {
            throw CommandFailure(message: error.description)
        }
        // The data first: the marker must never be durable before the bytes it vouches for.
        var directories: Set<String> = [directory]
        for file in files {
            try Self.flush(directory + "/" + file.path, flags: O_RDONLY)
            var parent = (file.path as NSString).deletingLastPathComponent
            while !parent.isEmpty {
                directories.insert(directory + "/" + parent)
                parent = (parent as NSString).deletingLastPathComponent
            }
        }
        for path in directories.sorted() where path != directory { try Self.flush(path, flags: O_RDONLY | O_DIRECTORY) }

        let temporary = directory + "/" + Self.temporaryName
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard descriptor >= 0 else { throw CommandFailure(message: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let synced = fsync(descriptor) == 0
        let syncError = errno
        close(descriptor)
        guard synced else {
            unlink(temporary)
            throw CommandFailure(message: "cannot flush \(temporary): \(String(cString: strerror(syncError)))")
        }
        guard rename(temporary, marker) == 0 else {
            let error = errno
            unlink(temporary)
            throw CommandFailure(message: "cannot rename \(temporary) to \(marker): \(String(cString: strerror(error)))")
        }
        try Self.flush(directory, flags: O_RDONLY | O_DIRECTORY)
        print("committed \(directory): wrote \(Completeness.ternMarker) after flushing \(files.count) file\(files.count == 1 ? "" : "s")")
    }

    /// Opens `path` without following a link and fsyncs it.
    static func flush(_ path: String, flags: Int32) throws {
        let descriptor = open(path, flags | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw CommandFailure(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw CommandFailure(message: "cannot flush \(path): \(String(cString: strerror(errno)))") }
    }
}
