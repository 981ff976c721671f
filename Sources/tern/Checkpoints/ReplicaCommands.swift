import ArgumentParser
import Foundation
import TernCheckpoints
import TernControl
import TernModel
import TernPostgres
import TernStorage

/// `tern checkpoint push CKPT --to TARGET|URL`
struct CheckpointPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Copy a checkpoint to a target's store (or any store URL) and commit it there.",
        discussion: """
            CKPT is a step directory (sealed now) or a checkpoint id (prefix) recorded in the database, \
            whose files are read from --from DIR. The copy follows Tern's commit protocol: data files, \
            a check of what the store holds, framework marker files, the manifest, then a create-only \
            commit marker; a job resumes only from a committed copy. Files already on the store (from \
            an earlier push, or the same bytes in another checkpoint) are not sent again, and an \
            interrupted push continues where it stopped when run again. --deep reads every byte back \
            after the copy (verification level L2). Without --no-record the replica's state is kept \
            in the database; with it, any store URL works without a database, as a verified copy tool. \
            See docs/stores.md.
            """)

    @Argument(help: ArgumentHelp("A step directory, or a checkpoint id or unique prefix.", valueName: "ckpt")) var checkpoint: String
    @Option(help: ArgumentHelp("A target name or a store URL (file:///path, s3://bucket/prefix, gs://bucket/prefix, az://account/container/prefix).", valueName: "target|url"))
    var to: String
    @Option(help: ArgumentHelp("The step directory holding CKPT's files, when CKPT is an id.", valueName: "dir")) var from: String?
    @Flag(help: "Read every byte back from the store after the copy (level L2).") var deep = false
    @Option(help: ArgumentHelp("Transfers at once.", valueName: "n")) var parallel = 4
    @Option(name: .customLong("part-size"), help: ArgumentHelp("Files larger than this many MiB go in parts that survive a crash (S3's minimum is 5).", valueName: "MiB"))
    var partSize = 16
    @Flag(name: .customLong("no-record"), help: "Use no database: CKPT must be a directory and the destination a URL.") var noRecord = false
    @Flag(help: "Show transfer progress on standard error even when it is not a terminal.") var progress = false
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var access: StoreAccessOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func validate() throws {
        guard parallel >= 1, parallel <= 64 else { throw ValidationError("--parallel must be between 1 and 64") }
        guard partSize >= 1, partSize <= 5 * 1024 else { throw ValidationError("--part-size must be between 1 and 5120 MiB") }
    }

    func run() async throws {
        var isDirectory: ObjCBool = false
        let checkpointIsDirectory = FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDirectory) && isDirectory.boolValue
        if noRecord {
            guard checkpointIsDirectory else { throw CommandFailure(message: "with --no-record, CKPT must be a step directory (there is no database to look an id up in)", exitCode: 2) }
            let sealed = try await sealDirectory(checkpoint)
            let destination = try await SelectedStore.open(to, access: access, pool: nil)
            try await push(sealed, from: checkpoint, to: destination, journal: MemoryReplicaJournal())
            return
        }
        try await database.withPool(migrations: migrations) { pool in
            let sealed: SealedCheckpoint
            let source: String
            if checkpointIsDirectory {
                sealed = try await sealDirectory(checkpoint)
                try await CheckpointRepository(pool: pool).record(sealed, job: nil, step: nil, attempt: nil)
                source = checkpoint
            } else {
                guard let from else {
                    throw CommandFailure(message: "CKPT \(checkpoint) is an id: give the directory holding its files with --from DIR", exitCode: 2)
                }
                let stored = try await storedCheckpoint(checkpoint, repository: CheckpointRepository(pool: pool))
                sealed = SealedCheckpoint(manifest: stored.manifest, manifestJSON: stored.manifestJSON, sidecar: stored.sidecar,
                                          format: JobSpec.CheckpointFormat(rawValue: stored.format) ?? .marker)
                source = from
            }
            let destination = try await SelectedStore.open(to, access: access, pool: pool)
            let journal = ReplicaRepository(pool: pool).journal(checkpointID: sealed.id, store: destination.url, target: destination.target,
                                                                replicator: replicatorName(), isAbandoned: replicatorIsGone)
            try await push(sealed, from: source, to: destination, journal: journal)
        }
    }

    private func sealDirectory(_ directory: String) async throws -> SealedCheckpoint {
        let reporter = ProgressReporter(verb: "sealing", forced: progress)
        defer { reporter.finish() }
        do {
            return try await CheckpointSealer().seal(directory: directory, progress: reporter.callback)
        } catch {
            throw CommandFailure(message: "\(error)")
        }
    }

    private func push(_ sealed: SealedCheckpoint, from directory: String, to destination: SelectedStore, journal: any ReplicaJournal) async throws {
        let started = ContinuousClock.now
        let report: ReplicationReport
        do {
            report = try await withTransferProgress(verb: "pushing", total: sealed.totalBytes, forced: progress) { transfer in
                var replicator = Replicator(store: destination.store, parallelism: parallel, partSize: Int64(partSize) << 20, progress: transfer)
                replicator.faultPoint = crashPoint()
                return try await replicator.replicate(sealed, from: directory, journal: journal, deep: deep)
            }
        } catch let error as StoreError {
            throw CommandFailure(message: error.description)
        } catch let error as CheckpointError {
            throw CommandFailure(message: error.description)
        }
        let seconds = (ContinuousClock.now - started).seconds
        if json {
            try printJSON(PushJSON(report: report, target: destination.target, seconds: seconds), convertKeys: false)
            return
        }
        print(formatTable([
            ["checkpoint:", report.checkpointID],
            ["store:", destination.target.map { "\($0) (\(report.store))" } ?? report.store],
            ["sent:", "\(report.objectsSent) objects, \(byteText(report.bytesSent))"],
            ["already there:", "\(report.objectsSkipped) objects, \(byteText(report.bytesSkipped))"],
            ["committed:", "\(report.level.rawValue)\(report.alreadyCommitted ? " (was already committed)" : "")"],
            ["time:", String(format: "%.2fs, %@", seconds, rateText(bytes: report.bytesSent, seconds: seconds))],
        ]))
    }
}

/// For crash tests: `TERN_CRASH_AT=<point>` (a Replicator fault point such as `after-part:2`) kills
/// this process with SIGKILL when the replicator reaches that point: no cleanup runs, as in a real
/// crash.
func crashPoint() -> (@Sendable (String) throws -> Void)? {
    guard let target = ProcessInfo.processInfo.environment["TERN_CRASH_AT"], !target.isEmpty else { return nil }
    return { point in
        if point == target { kill(getpid(), SIGKILL) }
    }
}

struct PushJSON: Encodable {
    var report: ReplicationReport
    var target: String?
    var seconds: Double

    enum CodingKeys: String, CodingKey { case target, seconds }

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(target, forKey: .target)
        try container.encode(seconds, forKey: .seconds)
    }
}

/// `tern checkpoint pull CKPT --from TARGET|URL DIR`
struct CheckpointPullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Restore a checkpoint committed on a store into a new directory, checking every byte.",
        discussion: """
            CKPT is a checkpoint id or a unique prefix of one (looked up among the checkpoints \
            committed on the store). Only a committed copy is restored; every 64 MiB chunk is checked \
            against the manifest's SHA-256 while it is read, and DIR appears only when every file \
            matched (files are written beside it first). DIR must not exist.
            """)

    @Argument(help: ArgumentHelp("A checkpoint id or unique prefix.", valueName: "ckpt")) var checkpoint: String
    @Option(help: ArgumentHelp("A target name or a store URL.", valueName: "target|url")) var from: String
    @Argument(help: ArgumentHelp("The directory to create.", valueName: "dir")) var directory: String
    @Option(help: ArgumentHelp("Transfers at once.", valueName: "n")) var parallel = 4
    @Flag(help: "Show transfer progress on standard error even when it is not a terminal.") var progress = false
    @Flag(help: "Print the outcome as JSON.") var json = false
    @OptionGroup var access: StoreAccessOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var migrations: MigrationsOptions

    func run() async throws {
        let source: SelectedStore
        let id: String
        if SelectedStore.isURL(from) {
            source = try await SelectedStore.open(from, access: access, pool: nil)
            id = try await committedID(checkpoint, on: source)
        } else {
            (source, id) = try await database.withPool(migrations: migrations) { pool in
                let source = try await SelectedStore.open(from, access: access, pool: pool)
                let id = try await committedID(checkpoint, on: source)
                // The database's word counts too: a copy demoted there is not resumed from, marker or not.
                if let replica = try await ReplicaRepository(pool: pool).replicas(checkpointID: id).first(where: { $0.store == source.url.description }),
                   replica.state != .committed {
                    throw CommandFailure(message: "the copy of \(id.prefix(12)) on \(from) is \(replica.state.rawValue), not committed\(replica.error.map { ": \($0)" } ?? ""); refusing to restore from it")
                }
                return (source, id)
            }
        }
        let started = ContinuousClock.now
        let restored: RestoredCheckpoint
        do {
            // The total is not known before the manifest is read; the restore sets it then.
            restored = try await withTransferProgress(verb: "pulling", total: 0, forced: progress) { transfer in
                try await Replicator(store: source.store, parallelism: parallel, progress: transfer).restore(id: id, to: directory)
            }
        } catch let error as StoreError {
            throw CommandFailure(message: error.description)
        } catch let error as CheckpointError {
            throw CommandFailure(message: error.description)
        }
        let seconds = (ContinuousClock.now - started).seconds
        if json {
            try printJSON(PullJSON(checkpointID: id, directory: directory, files: restored.manifest.files.count,
                                   bytes: restored.manifest.totalBytes, seconds: seconds), convertKeys: false)
            return
        }
        print("restored \(id) into \(directory): \(restored.manifest.files.count) files, \(byteText(restored.manifest.totalBytes)), every chunk checked (\(String(format: "%.2fs", seconds)))")
    }

    /// The full id of the one checkpoint committed on the store whose id starts with `reference`.
    private func committedID(_ reference: String, on source: SelectedStore) async throws -> String {
        let prefix = reference.lowercased()
        guard prefix.utf8.count >= CheckpointRepository.minimumPrefixLength, prefix.utf8.count <= 64,
              prefix.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw CommandFailure(message: "\"\(reference)\" is not a checkpoint id: give its 64 hex digits or a unique prefix of at least \(CheckpointRepository.minimumPrefixLength)", exitCode: 2)
        }
        if prefix.utf8.count == 64 { return prefix }
        let markers: [ObjectInfo]
        do {
            markers = try await source.store.list(prefix: StoreLayout.commitMarkerPrefix + prefix)
        } catch {
            throw CommandFailure(message: error.description)
        }
        let ids = Set(markers.compactMap { info -> String? in
            let parts = info.key.split(separator: "/")
            return parts.count == 3 && parts[2] == "_TERN_COMMITTED" ? String(parts[1]) : nil
        })
        switch ids.count {
        case 0: throw CommandFailure(message: "no checkpoint committed on \(source.url) has an id starting with \(prefix)")
        case 1: return ids.first!
        default: throw CommandFailure(message: "\(prefix) matches \(ids.count) checkpoints committed on \(source.url); give more of the id:\n  " + ids.sorted().joined(separator: "\n  "))
        }
    }
}

struct PullJSON: Encodable {
    var checkpointID: String
    var directory: String
    var files: Int
    var bytes: Int64
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case directory, files, bytes, seconds
        case checkpointID = "checkpoint_id"
    }
}

/// `tern checkpoint status JOB`
struct CheckpointStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show where a job's checkpoints are: a step × store matrix of replica states.",
        discussion: """
            One row per checkpoint (newest step first), one column per store (named by its target \
            when it has one). A cell is the replica's state and verification level: committed/L1 \
            (sizes, versions and store-validated checksums), committed/L2 (every byte read back), \
            uploading, verifying, corrupt (never resumed from), or - for no copy.
            """)

    @OptionGroup var reference: JobReferenceOptions
    @Flag(help: "Print the replicas as JSON.") var json = false

    func run() async throws {
        try await reference.database.withPool(migrations: reference.migrations) { pool in
            let job = try await resolveJob(reference.job, repository: JobRepository(pool: pool))
            let checkpoints = try await CheckpointRepository(pool: pool).list(job: job.id)
            let replicas = try await ReplicaRepository(pool: pool).replicas(job: job.id)
            if json {
                try printJSON(StatusJSON(checkpoints: checkpoints.map { checkpoint in
                    StatusJSON.Row(step: checkpoint.step, checkpointID: checkpoint.checkpointID,
                                   replicas: replicas.filter { $0.replica.checkpointID == checkpoint.checkpointID }.map(\.replica))
                }), convertKeys: false)
                return
            }
            if checkpoints.isEmpty {
                print("no checkpoints recorded for job \(shortID(job.id)) \(job.name)")
                return
            }
            var columns: [String] = []
            for (_, replica) in replicas {
                let name = replica.target ?? replica.store
                if !columns.contains(name) { columns.append(name) }
            }
            columns.sort()
            var rows = [["STEP", "CHECKPOINT"] + columns.map { $0.uppercased() }]
            for checkpoint in checkpoints {
                let cells = columns.map { column -> String in
                    guard let replica = replicas.first(where: { ($0.replica.target ?? $0.replica.store) == column && $0.replica.checkpointID == checkpoint.checkpointID })?.replica else { return "-" }
                    return replica.level.map { "\(replica.state.rawValue)/\($0.rawValue)" } ?? replica.state.rawValue
                }
                rows.append([String(checkpoint.step), shortCheckpointID(checkpoint.checkpointID)] + cells)
            }
            print(formatTable(rows))
        }
    }
}

struct StatusJSON: Encodable {
    struct Row: Encodable {
        var step: Int64
        var checkpointID: String
        var replicas: [ReplicaRecord]

        enum CodingKeys: String, CodingKey {
            case step, replicas
            case checkpointID = "checkpoint_id"
        }
    }

    var checkpoints: [Row]
}
