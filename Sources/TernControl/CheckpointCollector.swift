public import Foundation
import TernCheckpoints
public import TernPostgres
public import TernStorage

/// What `tern gc` removed (or, with a dry run, would remove).
public struct CollectionReport: Sendable, Codable, Hashable {
    public struct Collected: Sendable, Codable, Hashable {
        public var checkpointID: String
        public var step: Int64
        /// Stores whose copy was removed.
        public var stores: [String]
        public var objectsDeleted: Int
        public var bytesFreed: Int64

        enum CodingKeys: String, CodingKey {
            case step, stores
            case checkpointID = "checkpoint_id"
            case objectsDeleted = "objects_deleted"
            case bytesFreed = "bytes_freed"
        }
    }

    public var kept: [String] = []
    public var collected: [Collected] = []
    /// Multipart uploads a crashed transfer left on S3 stores, aborted (or, dry, to abort).
    public var abortedUploads: [AbortedUpload] = []
    public var dryRun: Bool

    public struct AbortedUpload: Sendable, Codable, Hashable {
        public var store: String
        public var key: String
        public var uploadID: String

        enum CodingKeys: String, CodingKey {
            case store, key
            case uploadID = "upload_id"
        }
    }

    enum CodingKeys: String, CodingKey {
        case kept, collected
        case abortedUploads = "aborted_uploads"
        case dryRun = "dry_run"
    }
}

/// Removes a job's old checkpoints from the stores and the database (`tern gc JOB --keep N`).
///
/// Per store, the commit marker goes first, so no reader resumes from a checkpoint being removed;
/// then the objects no other live manifest on that store references (blobs are shared between
/// checkpoints by content); then the manifest and sidecar; then the replica rows. A crash in
/// between leaves an uncommitted prefix, which the next run removes. Ages come from the database
/// clock, never the host's.
public struct CheckpointCollector: Sendable {
    let pool: PostgresPool
    /// Opens the store of a replica (its URL and target, for the target's credentials).
    let openStore: @Sendable (StoreURL, String?) async throws -> any BlobStore

    public init(pool: PostgresPool, openStore: @escaping @Sendable (StoreURL, String?) async throws -> any BlobStore) {
        self.pool = pool
        self.openStore = openStore
    }

    /// Keeps the job's `keep` newest checkpoints (by step) and any younger than `minimumAge`;
    /// collects the rest.
    public func collect(job: UUID, keep: Int, minimumAge: Duration = .zero, dryRun: Bool) async throws -> CollectionReport {
        precondition(keep >= 0)
        // The stores to sweep for leftover uploads, read before the collected copies' rows go.
        let stores = try await storesHolding(job: job)
        let ageSeconds = Double(minimumAge.components.seconds)
        let rows = try await pool.query("""
            SELECT checkpoint_id, step, (created_at > now() - make_interval(secs => \(ageSeconds))) AS young
            FROM job_checkpoints WHERE job_id = \(job)
            ORDER BY step DESC, created_at DESC, checkpoint_id
            """)
        var report = CollectionReport(dryRun: dryRun)
        var doomed: [(id: String, step: Int64)] = []
        for (index, row) in rows.enumerated() {
            let (id, step, young) = try row.decode(String.self, Int64.self, Bool.self)
            if index < keep || young { report.kept.append(id) } else { doomed.append((id, step)) }
        }
        let doomedIDs = doomed.map(\.id)
        for (id, step) in doomed {
            var collected = CollectionReport.Collected(checkpointID: id, step: step, stores: [], objectsDeleted: 0, bytesFreed: 0)
            let replicas = try await pool.query("""
                SELECT store_url, target_name FROM replicas WHERE checkpoint_id = \(id) ORDER BY store_url
                """)
            for replica in replicas {
                let (storeText, target) = try replica.decode(String.self, String?.self)
                let url = try StoreURL(parsing: storeText)
                let (objects, bytes) = try await collect(id, on: url, target: target, excluding: doomedIDs, dryRun: dryRun)
                collected.stores.append(storeText)
                collected.objectsDeleted += objects
                collected.bytesFreed += bytes
            }
            if !dryRun {
                try await pool.withTransaction { connection in
                    try await connection.query("DELETE FROM job_checkpoints WHERE job_id = \(job) AND checkpoint_id = \(id)")
                    // The bytes' row goes too when no job links to them and no copy remains.
                    try await connection.query("""
                        DELETE FROM checkpoints c WHERE c.id = \(id)
                          AND NOT EXISTS (SELECT 1 FROM job_checkpoints l WHERE l.checkpoint_id = c.id)
                          AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.checkpoint_id = c.id)
                        """)
                }
            }
            report.collected.append(collected)
        }
        // An upload started less than an hour ago may belong to a transfer that has not journaled
        // it yet: never touched.
        report.abortedUploads = try await abortLeftoverUploads(
            on: stores, olderThan: max(minimumAge, Self.leftoverUploadMinimumAge), dryRun: dryRun)
        return report
    }

    /// How old an unjournaled multipart upload must be before `tern gc` aborts it.
    public static let leftoverUploadMinimumAge: Duration = .seconds(3600)

    /// The stores (URL and target) holding a copy of any of the job's checkpoints.
    func storesHolding(job: UUID) async throws -> [(url: StoreURL, target: String?)] {
        let rows = try await pool.query("""
            SELECT DISTINCT r.store_url, r.target_name FROM replicas r
            JOIN job_checkpoints l ON l.checkpoint_id = r.checkpoint_id
            WHERE l.job_id = \(job) ORDER BY r.store_url
            """)
        return try rows.map { row in
            let (url, target) = try row.decode(String.self, String?.self)
            return (try StoreURL(parsing: url), target)
        }
    }

    /// Aborts the multipart uploads under `blobs/` of the S3 stores given that began more than
    /// `age` ago (by the database's clock) and that no replication journal (`replica_objects`)
    /// holds: what a transfer killed before it journaled its upload left behind, which S3 keeps,
    /// and bills, until it is aborted. A journaled upload is the replicator's to resume. GCS
    /// resumable sessions and Azure's uncommitted blocks expire by themselves after a week, and
    /// file stores' partial files are replaced by the next transfer, so only S3 is swept.
    public func abortLeftoverUploads(on stores: [(url: StoreURL, target: String?)], olderThan age: Duration,
                                     dryRun: Bool) async throws -> [CollectionReport.AbortedUpload] {
        let s3Stores = stores.filter { $0.url.scheme == .s3 }
        if s3Stores.isEmpty { return [] }
        let cutoff = try await pool.query(
            "SELECT now() - make_interval(secs => \(Double(age.components.seconds)))").scalar(Date.self)
        var aborted: [CollectionReport.AbortedUpload] = []
        for (url, target) in s3Stores {
            guard let store = try await openStore(url, target) as? S3Store else { continue }
            let journaled = Set(try await pool.query("""
                SELECT upload->>'uploadID' FROM replica_objects WHERE store_url = \(url.description) AND upload IS NOT NULL
                """).map { try $0.decode(String?.self, at: 0) }.compactMap { $0 })
            for upload in try await store.leftoverUploads(prefix: StoreLayout.blobPrefix, olderThan: cutoff)
            where !journaled.contains(upload.uploadID) {
                if !dryRun { try await store.abort(upload) }
                aborted.append(.init(store: url.description, key: upload.key, uploadID: upload.uploadID))
            }
        }
        return aborted
    }

    private func collect(_ id: String, on url: StoreURL, target: String?, excluding doomed: [String], dryRun: Bool) async throws -> (Int, Int64) {
        // Roots some other checkpoint with a copy on this store (in any state: an upload under way
        // counts) still needs.
        let live = try await pool.query("""
            SELECT DISTINCT f.root FROM checkpoint_files f JOIN replicas r ON r.checkpoint_id = f.checkpoint_id
            WHERE r.store_url = \(url.description) AND NOT (r.checkpoint_id = ANY(\(doomed)::text[]))
            """)
        let liveRoots = Set(try live.map { try $0.decode(String.self, at: 0) })
        let mine = try await pool.query("""
            SELECT DISTINCT root, size FROM checkpoint_files WHERE checkpoint_id = \(id)
            """)
        let unshared = try mine.map { try $0.decode(String.self, Int64.self) }.filter { !liveRoots.contains($0.0) }
        if dryRun { return (unshared.count, unshared.reduce(0) { $0 + $1.1 }) }

        let store = try await openStore(url, target)
        try await store.delete(StoreLayout.commitMarker(id: id))
        try await pool.query("""
            UPDATE replicas SET state = 'corrupt', level = NULL, error = 'being collected (tern gc)', updated_at = now()
            WHERE checkpoint_id = \(id) AND store_url = \(url.description)
            """)
        for (root, _) in unshared { try await store.delete(StoreLayout.blob(root: root)) }
        try await store.delete(StoreLayout.manifest(id: id))
        try await store.delete(StoreLayout.sidecar(id: id))
        try await pool.query("DELETE FROM replicas WHERE checkpoint_id = \(id) AND store_url = \(url.description)")
        return (unshared.count, unshared.reduce(0) { $0 + $1.1 })
    }
}
