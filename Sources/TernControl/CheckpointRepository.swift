public import Foundation
public import TernCheckpoints
public import TernPostgres
internal import TernModel

/// What ``CheckpointRepository/record(_:job:step:attempt:)`` did.
public struct RecordOutcome: Sendable, Hashable {
    /// The checkpoint id (the manifest's SHA-256): the same for the same bytes, however often sealed.
    public var id: String
    /// True when this call stored the checkpoint; false when the same manifest was already stored
    /// (then nothing about the checkpoint was written).
    public var newlyStored: Bool
    /// True when this call linked the checkpoint to the job (always false without a job).
    public var newlyLinked: Bool
    /// The step the job's link records: the one given, or, when the job already had this
    /// checkpoint, the step recorded first (nil without a job).
    public var step: Int64?

    public init(id: String, newlyStored: Bool, newlyLinked: Bool, step: Int64?) {
        self.id = id
        self.newlyStored = newlyStored
        self.newlyLinked = newlyLinked
        self.step = step
    }
}

/// A job that wrote a checkpoint (a `job_checkpoints` row with the job's name).
public struct CheckpointJobLink: Sendable, Hashable, Codable {
    public var jobID: UUID
    public var jobName: String
    public var step: Int64
    public var attemptID: UUID?
    /// When the job's link was recorded (the database's time).
    public var recordedAt: Date

    public init(jobID: UUID, jobName: String, step: Int64, attemptID: UUID?, recordedAt: Date) {
        self.jobID = jobID
        self.jobName = jobName
        self.step = step
        self.attemptID = attemptID
        self.recordedAt = recordedAt
    }
}

/// A stored checkpoint, read back and checked: the manifest's bytes hash to the id, the manifest
/// parses, and the sidecar is the one it names.
public struct StoredCheckpoint: Sendable {
    public var id: String
    /// The exact canonical bytes the id is the SHA-256 of.
    public var manifestJSON: String
    public var manifest: CheckpointManifest
    /// The chunk sidecar (`TERNCHK1` …), verified against the manifest.
    public var sidecar: [UInt8]
    /// The format whose completion signal was found when it was sealed (`torch-dcp`, `marker`, …);
    /// text, so a format added by a newer Tern still reads.
    public var format: String
    public var bytes: Int64
    public var files: Int
    /// When these bytes were first sealed (the database's time).
    public var createdAt: Date
    /// The jobs that recorded it, oldest link first; empty for an ad-hoc seal.
    public var jobs: [CheckpointJobLink]

    public init(id: String, manifestJSON: String, manifest: CheckpointManifest, sidecar: [UInt8], format: String, bytes: Int64,
                files: Int, createdAt: Date, jobs: [CheckpointJobLink]) {
        self.id = id
        self.manifestJSON = manifestJSON
        self.manifest = manifest
        self.sidecar = sidecar
        self.format = format
        self.bytes = bytes
        self.files = files
        self.createdAt = createdAt
        self.jobs = jobs
    }
}

/// One checkpoint of a job, as `tern checkpoints JOB` lists it.
public struct JobCheckpointRecord: Sendable, Hashable, Codable {
    public var jobID: UUID
    public var checkpointID: String
    public var step: Int64
    public var attemptID: UUID?
    public var format: String
    public var files: Int
    public var bytes: Int64
    /// When the job's link was recorded.
    public var recordedAt: Date
    /// When the bytes were first sealed (earlier than `recordedAt` when another job or an ad-hoc
    /// seal had the same bytes first).
    public var sealedAt: Date

    public init(jobID: UUID, checkpointID: String, step: Int64, attemptID: UUID?, format: String, files: Int, bytes: Int64,
                recordedAt: Date, sealedAt: Date) {
        self.jobID = jobID
        self.checkpointID = checkpointID
        self.step = step
        self.attemptID = attemptID
        self.format = format
        self.files = files
        self.bytes = bytes
        self.recordedAt = recordedAt
        self.sealedAt = sealedAt
    }
}

/// A checkpoint in an ambiguity report.
public struct CheckpointCandidate: Sendable, Hashable, Codable {
    public var id: String
    public var format: String
    public var files: Int
    public var bytes: Int64
    public var createdAt: Date

    public init(id: String, format: String, files: Int, bytes: Int64, createdAt: Date) {
        self.id = id
        self.format = format
        self.files = files
        self.bytes = bytes
        self.createdAt = createdAt
    }
}

/// Why ``CheckpointRepository/checkpoint(reference:)`` found no single checkpoint.
public enum CheckpointLookupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not an id or an id prefix: fewer than ``CheckpointRepository/minimumPrefixLength`` or more
    /// than 64 characters, or not hex digits.
    case malformed(reference: String)
    case notFound(reference: String)
    /// Several checkpoints have ids starting with the reference; `candidates` are the newest (at
    /// most 5) and `more` says whether others match too.
    case ambiguous(reference: String, candidates: [CheckpointCandidate], more: Bool)

    public var description: String {
        switch self {
        case .malformed(let reference):
            return "\"\(reference)\" is not a checkpoint id: give the 64 hex digits of one, or a unique prefix of at least \(CheckpointRepository.minimumPrefixLength)"
        case .notFound(let reference):
            return "no stored checkpoint has an id starting with \"\(reference)\" (see `tern checkpoints JOB`, or seal the directory first)"
        case .ambiguous(let reference, let candidates, let more):
            var text = "\"\(reference)\" matches more than one checkpoint; give more of the id:"
            for candidate in candidates {
                text += "\n  \(candidate.id)  \(candidate.files) files, \(candidate.bytes) bytes, \(candidate.format)"
            }
            if more { text += "\n  … and more" }
            return text
        }
    }
}

/// A checkpoint the repository refuses to store, or a stored one that fails its checks on read.
public struct CheckpointRepositoryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The `checkpoints`, `checkpoint_files` and `job_checkpoints` tables.
///
/// A checkpoint row is a fact about bytes (its id is its manifest's SHA-256); which jobs wrote
/// it, and at which step, are separate rows. So recording is idempotent: the same bytes sealed
/// again, for the same job, another job or none, store nothing new.
public struct CheckpointRepository: Sendable {
    let pool: PostgresPool

    /// The shortest id prefix ``checkpoint(reference:)`` accepts: 24 bits, so a typo rarely lands
    /// on another checkpoint.
    public static let minimumPrefixLength = 6

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    // MARK: Record

    /// Stores a sealed checkpoint and, with `job`, links it to that job at `step`, in one
    /// transaction: the checkpoint row, all its file rows (from `unnest` of array parameters, one
    /// statement whatever the file count) and the job's link with a `checkpoint_recorded` event
    /// are written together or not at all.
    ///
    /// Storing is `INSERT … ON CONFLICT DO NOTHING`: a manifest already stored is not written again
    /// (``RecordOutcome/newlyStored`` is false), and two concurrent records of the same bytes both
    /// succeed, the second waiting for the first and then storing nothing. The same holds for the
    /// job's link: a job that already has this checkpoint keeps its first step.
    ///
    /// The checkpoint is checked before anything is sent: the manifest text must parse as a
    /// canonical `tern-manifest/v1`, hash to `sealed.id`, and name `sealed.sidecar`. (The database
    /// checks the id and the sidecar again.)
    ///
    /// - Parameters:
    ///   - job: the job that wrote it; nil for an ad-hoc seal (still stored, with no link).
    ///   - step: the training step; required with `job`, not allowed without.
    ///   - attempt: the attempt that wrote it, which must be one of `job`'s.
    /// - Throws: ``CheckpointRepositoryError`` for an inconsistent checkpoint, an unknown job or an
    ///   attempt of another job; then nothing is written.
    @discardableResult
    public func record(_ sealed: SealedCheckpoint, job: UUID?, step: Int64?, attempt: UUID?) async throws -> RecordOutcome {
        let manifest = try Self.check(sealed)
        if job == nil && (step != nil || attempt != nil) {
            throw CheckpointRepositoryError("a step or attempt was given without a job; they describe a job's checkpoint")
        }
        if job != nil && step == nil { throw CheckpointRepositoryError("a job's checkpoint needs its step") }
        if let step, step < 0 { throw CheckpointRepositoryError("step \(step) is negative") }

        let files = manifest.files
        let paths = files.map(\.path)
        let sizes = files.map(\.size)
        let roots = files.map(\.root)
        let crcs = files.map(\.crc32c)
        let roles = files.map(\.role.rawValue)
        let insertCheckpoint: PostgresQuery = """
            WITH stored AS (
                INSERT INTO checkpoints (id, manifest, sidecar, format, bytes, files)
                VALUES (\(sealed.id), \(sealed.manifestJSON), \(Data(sealed.sidecar)), \(sealed.format.rawValue),
                        \(manifest.totalBytes), \(files.count))
                ON CONFLICT (id) DO NOTHING
                RETURNING id
            ),
            listed AS (
                INSERT INTO checkpoint_files (checkpoint_id, path, size, root, crc32c, role)
                SELECT stored.id, f.path, f.size, f.root, f.crc32c, f.role
                FROM stored, unnest(\(paths)::text[], \(sizes)::int8[], \(roots)::text[], \(crcs)::text[], \(roles)::text[])
                     AS f(path, size, root, crc32c, role)
            )
            SELECT count(*) FROM stored
            """
        do {
            return try await pool.withTransaction { connection in
                // The file rows go in only with a checkpoint row this statement inserted: a stored
                // checkpoint got all of them in the transaction that stored it.
                let newlyStored = try await connection.query(insertCheckpoint).scalar(Int.self) == 1
                guard let job, let step else {
                    return RecordOutcome(id: sealed.id, newlyStored: newlyStored, newlyLinked: false, step: nil)
                }
                let message = "checkpoint \(sealed.id.prefix(12)) at step \(step)"
                let details = CanonicalJSON.string(of: CheckpointEventDetails(
                    checkpointID: sealed.id, step: step, files: files.count, bytes: manifest.totalBytes))
                // The final SELECT's second half sees a link stored before this statement began; a
                // link committed by a concurrent record while ON CONFLICT waited is not in this
                // statement's snapshot, so it is read again below.
                let rows = try await connection.query("""
                    WITH linked AS (
                        INSERT INTO job_checkpoints (job_id, checkpoint_id, step, attempt_id)
                        VALUES (\(job), \(sealed.id), \(step), \(attempt))
                        ON CONFLICT (job_id, checkpoint_id) DO NOTHING
                        RETURNING job_id, attempt_id, step
                    ),
                    event AS (
                        INSERT INTO job_events (job_id, attempt_id, kind, message, details)
                        SELECT job_id, attempt_id, 'checkpoint_recorded', \(message), \(details)::jsonb FROM linked
                    )
                    SELECT step, true AS linked FROM linked
                    UNION ALL
                    SELECT step, false FROM job_checkpoints WHERE job_id = \(job) AND checkpoint_id = \(sealed.id)
                    """)
                if let row = rows.first {
                    let (stored, linked) = try row.decode(Int64.self, Bool.self)
                    return RecordOutcome(id: sealed.id, newlyStored: newlyStored, newlyLinked: linked, step: stored)
                }
                let stored = try await connection.query(
                    "SELECT step FROM job_checkpoints WHERE job_id = \(job) AND checkpoint_id = \(sealed.id)").scalar(Int64.self)
                return RecordOutcome(id: sealed.id, newlyStored: newlyStored, newlyLinked: false, step: stored)
            }
        } catch let error as PostgresError where error.sqlState == "23503" {
            // Foreign keys name what the caller got wrong; the checkpoint itself cannot break one.
            if error.constraint == "job_checkpoints_attempt_fkey" || error.constraint == "job_events_attempt_fkey" {
                throw CheckpointRepositoryError("attempt \(attempt?.uuidString.lowercased() ?? "-") is not an attempt of job \(job?.uuidString.lowercased() ?? "-")")
            }
            throw CheckpointRepositoryError("no job has id \(job?.uuidString.lowercased() ?? "-"); nothing was recorded")
        }
    }

    /// The manifest of `sealed`, after checking that its parts belong together.
    static func check(_ sealed: SealedCheckpoint) throws -> CheckpointManifest {
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.parse(sealed.manifestJSON)
            _ = try ChunkSidecar.decode(sealed.sidecar, for: manifest)
        } catch {
            throw CheckpointRepositoryError("checkpoint \(sealed.id) cannot be recorded: \(error)")
        }
        // parse proved the text is the manifest's canonical form byte for byte, apart from one
        // trailing newline it tolerates in files; the id is the hash of exactly the stored bytes.
        guard manifest.id == sealed.id, !sealed.manifestJSON.hasSuffix("\n") else {
            throw CheckpointRepositoryError("checkpoint \(sealed.id) cannot be recorded: its manifest text hashes to another id")
        }
        guard sealed.format != .auto else {
            throw CheckpointRepositoryError("checkpoint \(sealed.id) cannot be recorded without the format that found it complete")
        }
        return manifest
    }

    // MARK: Read

    /// The checkpoint a user means by `reference`: its full id, or a unique prefix of at least
    /// ``minimumPrefixLength`` hex digits (case-insensitive). The manifest and sidecar are checked
    /// on the way out (id = SHA-256 of the manifest, the manifest parses, the sidecar is the one it
    /// names), so a damaged row is an error rather than a wrong answer.
    ///
    /// - Throws: ``CheckpointLookupError`` when the reference names no single checkpoint,
    ///   ``CheckpointRepositoryError`` when the stored row fails its checks.
    public func checkpoint(reference: String) async throws -> StoredCheckpoint {
        let prefix = reference.lowercased()
        guard prefix.utf8.count >= Self.minimumPrefixLength, prefix.utf8.count <= 64,
              prefix.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { throw CheckpointLookupError.malformed(reference: reference) }
        // A prefix is a range of the primary key (ids are C-collated hex text).
        let lower = prefix + String(repeating: "0", count: 64 - prefix.utf8.count)
        let upper = prefix + String(repeating: "f", count: 64 - prefix.utf8.count)
        let matches = try await pool.query("""
            SELECT id, format, files, bytes, created_at FROM checkpoints
            WHERE id BETWEEN \(lower) AND \(upper)
            ORDER BY created_at DESC, id
            LIMIT 6
            """)
        guard let first = matches.first else { throw CheckpointLookupError.notFound(reference: reference) }
        if matches.count > 1 {
            let candidates = try matches.prefix(5).map { row in
                let (id, format, files, bytes, createdAt) = try row.decode(String.self, String.self, Int.self, Int64.self, Date.self)
                return CheckpointCandidate(id: id, format: format, files: files, bytes: bytes, createdAt: createdAt)
            }
            throw CheckpointLookupError.ambiguous(reference: reference, candidates: candidates, more: matches.count > 5)
        }
        let id = try first.decode(String.self, at: 0)
        let rows = try await pool.query("""
            SELECT id, manifest, sidecar, format, bytes, files, created_at FROM checkpoints WHERE id = \(id)
            """)
        guard let row = rows.first else { throw CheckpointLookupError.notFound(reference: reference) }
        let (storedID, manifestJSON, sidecar, format, bytes, files, createdAt) = try row.decode(
            String.self, String.self, Data.self, String.self, Int64.self, Int.self, Date.self)
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.parse(manifestJSON)
            _ = try ChunkSidecar.decode(Array(sidecar), for: manifest)
        } catch {
            throw CheckpointRepositoryError("the stored checkpoint \(storedID) is damaged: \(error)")
        }
        guard manifest.id == storedID, !manifestJSON.hasSuffix("\n") else {
            throw CheckpointRepositoryError("the stored checkpoint \(storedID) is damaged: its manifest hashes to another id")
        }
        let links = try await pool.query("""
            SELECT l.job_id, j.name, l.step, l.attempt_id, l.created_at
            FROM job_checkpoints l JOIN jobs j ON j.id = l.job_id
            WHERE l.checkpoint_id = \(storedID)
            ORDER BY l.created_at, l.job_id
            """)
        let jobs = try links.map { row in
            let (jobID, name, step, attemptID, recordedAt) = try row.decode(UUID.self, String.self, Int64.self, UUID?.self, Date.self)
            return CheckpointJobLink(jobID: jobID, jobName: name, step: step, attemptID: attemptID, recordedAt: recordedAt)
        }
        return StoredCheckpoint(
            id: storedID, manifestJSON: manifestJSON, manifest: manifest, sidecar: Array(sidecar), format: format, bytes: bytes,
            files: files, createdAt: createdAt, jobs: jobs)
    }

    /// A job's checkpoints, newest step first (ties: most recently recorded first). Facts only; the
    /// manifests are read with ``checkpoint(reference:)``.
    public func list(job: UUID) async throws -> [JobCheckpointRecord] {
        let rows = try await pool.query("""
            SELECT l.job_id, l.checkpoint_id, l.step, l.attempt_id, c.format, c.files, c.bytes, l.created_at, c.created_at
            FROM job_checkpoints l JOIN checkpoints c ON c.id = l.checkpoint_id
            WHERE l.job_id = \(job)
            ORDER BY l.step DESC, l.created_at DESC, l.checkpoint_id
            """)
        return try rows.map { row in
            let (jobID, checkpointID, step, attemptID, format, files, bytes, recordedAt, sealedAt) = try row.decode(
                UUID.self, String.self, Int64.self, UUID?.self, String.self, Int.self, Int64.self, Date.self, Date.self)
            return JobCheckpointRecord(
                jobID: jobID, checkpointID: checkpointID, step: step, attemptID: attemptID, format: format, files: files,
                bytes: bytes, recordedAt: recordedAt, sealedAt: sealedAt)
        }
    }
}

/// The details of a `checkpoint_recorded` job event.
struct CheckpointEventDetails: Encodable {
    var checkpointID: String
    var step: Int64
    var files: Int
    var bytes: Int64

    enum CodingKeys: String, CodingKey {
        case step, files, bytes
        case checkpointID = "checkpoint_id"
    }
}
