public import Foundation
public import TernCheckpoints
public import TernPostgres
public import TernStorage

/// One replica as `tern checkpoint status` shows it.
public struct ReplicaRecord: Sendable, Hashable, Codable {
    public var checkpointID: String
    public var store: String
    public var target: String?
    public var state: ReplicaState
    public var level: VerificationLevel?
    public var error: String?
    public var updatedAt: Date
    public var committedAt: Date?

    enum CodingKeys: String, CodingKey {
        case store, target, state, level, error
        case checkpointID = "checkpoint_id"
        case updatedAt = "updated_at"
        case committedAt = "committed_at"
    }
}

/// The `replicas` and `replica_objects` tables: where copies of checkpoints are, and the
/// replicator's journal.
public struct ReplicaRepository: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// The journal of `checkpointID` on `store`, for a replicator called `replicator` whose claim
    /// lasts `claim` past each write (a crashed replicator's claim lapses by itself).
    /// - Parameter isAbandoned: says whether a claim's holder is known to be gone (a process of this
    ///   host that no longer runs), so its claim is taken over at once instead of after it lapses.
    public func journal(checkpointID: String, store: StoreURL, target: String?, replicator: String,
                        claim: Duration = .seconds(120),
                        isAbandoned: @escaping @Sendable (String) -> Bool = { _ in false }) -> PostgresReplicaJournal {
        PostgresReplicaJournal(pool: pool, checkpointID: checkpointID, store: store.description, target: target,
                               replicator: replicator, claimSeconds: Double(claim.components.seconds), isAbandoned: isAbandoned)
    }

    /// Every replica of the checkpoints of one job, newest step first.
    public func replicas(job: UUID) async throws -> [(step: Int64, replica: ReplicaRecord)] {
        let rows = try await pool.query("""
            SELECT l.step, r.checkpoint_id, r.store_url, r.target_name, r.state, r.level, r.error, r.updated_at, r.committed_at
            FROM job_checkpoints l JOIN replicas r ON r.checkpoint_id = l.checkpoint_id
            WHERE l.job_id = \(job)
            ORDER BY l.step DESC, r.store_url
            """)
        return try rows.map { row in
            let (step, id, store, target, state, level, error, updatedAt, committedAt) = try row.decode(
                Int64.self, String.self, String.self, String?.self, String.self, String?.self, String?.self, Date.self, Date?.self)
            return (step, ReplicaRecord(checkpointID: id, store: store, target: target, state: ReplicaState(rawValue: state) ?? .corrupt,
                                        level: level.flatMap(VerificationLevel.init(rawValue:)), error: error,
                                        updatedAt: updatedAt, committedAt: committedAt))
        }
    }

    /// The replicas of one checkpoint.
    public func replicas(checkpointID: String) async throws -> [ReplicaRecord] {
        let rows = try await pool.query("""
            SELECT checkpoint_id, store_url, target_name, state, level, error, updated_at, committed_at
            FROM replicas WHERE checkpoint_id = \(checkpointID) ORDER BY store_url
            """)
        return try rows.map { row in
            let (id, store, target, state, level, error, updatedAt, committedAt) = try row.decode(
                String.self, String.self, String?.self, String.self, String?.self, String?.self, Date.self, Date?.self)
            return ReplicaRecord(checkpointID: id, store: store, target: target, state: ReplicaState(rawValue: state) ?? .corrupt,
                                 level: level.flatMap(VerificationLevel.init(rawValue:)), error: error,
                                 updatedAt: updatedAt, committedAt: committedAt)
        }
    }
}

/// A replica's lost claim: another replicator took it over after this one's claim lapsed.
public struct ReplicaClaimError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The replicator's journal in PostgreSQL. Every write carries the replicator's name and extends
/// its claim; a write by a replicator that no longer holds the claim changes nothing and fails, so
/// a stalled replicator that wakes up cannot overwrite the state of the one that took over.
public struct PostgresReplicaJournal: ReplicaJournal {
    let pool: PostgresPool
    let checkpointID: String
    let store: String
    let target: String?
    let replicator: String
    let claimSeconds: Double
    let isAbandoned: @Sendable (String) -> Bool

    public func claim() async throws -> [String: JournaledObject] {
        try await pool.query("""
            INSERT INTO replicas (checkpoint_id, store_url, target_name) VALUES (\(checkpointID), \(store), \(target))
            ON CONFLICT (checkpoint_id, store_url) DO NOTHING
            """)
        let rows = try await pool.query("""
            UPDATE replicas SET claimed_by = \(replicator), claim_expires_at = now() + make_interval(secs => \(claimSeconds)),
                   target_name = coalesce(\(target), target_name), updated_at = now()
            WHERE checkpoint_id = \(checkpointID) AND store_url = \(store)
              AND (claimed_by IS NULL OR claimed_by = \(replicator) OR claim_expires_at < now())
            RETURNING 1
            """)
        guard !rows.isEmpty else {
            let holder = try await pool.query("""
                SELECT claimed_by, claim_expires_at FROM replicas WHERE checkpoint_id = \(checkpointID) AND store_url = \(store)
                """)
            let (who, until) = try holder.first?.decode(String?.self, Date?.self) ?? (nil, nil)
            if let who, isAbandoned(who) {
                // Compare-and-swap on the holder: of two replicators taking over, one wins.
                let taken = try await pool.query("""
                    UPDATE replicas SET claimed_by = \(replicator), claim_expires_at = now() + make_interval(secs => \(claimSeconds)),
                           target_name = coalesce(\(target), target_name), updated_at = now()
                    WHERE checkpoint_id = \(checkpointID) AND store_url = \(store) AND claimed_by = \(who)
                    RETURNING 1
                    """)
                if !taken.isEmpty { return try await recordedObjects() }
            }
            throw ReplicaClaimError(description: "another replicator (\(who ?? "unknown")) is copying \(checkpointID.prefix(12)) to \(store) until \(until.map { "\($0)" } ?? "its claim lapses"); try again later")
        }
        return try await recordedObjects()
    }

    public func recordedObjects() async throws -> [String: JournaledObject] {
        let rows = try await pool.query("""
            SELECT key, size, crc32c, version, upload::text FROM replica_objects
            WHERE checkpoint_id = \(checkpointID) AND store_url = \(store)
            """)
        var objects: [String: JournaledObject] = [:]
        for row in rows {
            let (key, size, crc, version, upload) = try row.decode(String.self, Int64?.self, Int64?.self, String?.self, String?.self)
            var object = JournaledObject(key: key)
            if let size { object.stored = ObjectInfo(key: key, size: size, crc32c: crc.map { UInt32($0) }, version: version) }
            if let upload { object.upload = try JSONDecoder().decode(LargeUpload.self, from: Data(upload.utf8)) }
            objects[key] = object
        }
        return objects
    }

    public func recordUpload(_ upload: LargeUpload) async throws {
        let json = String(decoding: try JSONEncoder().encode(upload), as: UTF8.self)
        try await fenced("""
            INSERT INTO replica_objects (checkpoint_id, store_url, key, upload)
            SELECT \(checkpointID), \(store), \(upload.key), \(json)::jsonb FROM mine
            ON CONFLICT (checkpoint_id, store_url, key) DO UPDATE SET upload = excluded.upload, updated_at = now()
            """)
    }

    public func recordStored(_ info: ObjectInfo) async throws {
        try await fenced("""
            INSERT INTO replica_objects (checkpoint_id, store_url, key, size, crc32c, version)
            SELECT \(checkpointID), \(store), \(info.key), \(info.size), \(info.crc32c.map { Int64($0) }), \(info.version) FROM mine
            ON CONFLICT (checkpoint_id, store_url, key) DO UPDATE
                SET size = excluded.size, crc32c = excluded.crc32c, version = excluded.version, upload = NULL, updated_at = now()
            """)
    }

    public func forget(key: String) async throws {
        try await fenced("""
            DELETE FROM replica_objects USING mine
            WHERE checkpoint_id = \(checkpointID) AND store_url = \(store) AND key = \(key)
            """)
    }

    public func transition(to state: ReplicaState, level: VerificationLevel?, error: String?) async throws {
        // One UPDATE both checks and extends the claim (a row may be updated once per statement).
        // Demoting to corrupt needs no claim: `verify --on` demotes what it finds broken.
        let claimCondition: PostgresQuery = state == .corrupt
            ? "AND (claimed_by IS NULL OR claimed_by = \(replicator) OR claim_expires_at < now())"
            : "AND claimed_by = \(replicator)"
        let rows = try await pool.query("""
            UPDATE replicas SET state = \(state.rawValue), level = \(level?.rawValue), error = \(error), updated_at = now(),
                   claim_expires_at = CASE WHEN claimed_by = \(replicator) THEN now() + make_interval(secs => \(claimSeconds))
                                           ELSE claim_expires_at END,
                   committed_at = CASE WHEN \(state.rawValue) = 'committed' THEN coalesce(committed_at, now()) ELSE NULL END,
                   verified_at = CASE WHEN \(state.rawValue) = 'committed' THEN now() ELSE verified_at END
            WHERE checkpoint_id = \(checkpointID) AND store_url = \(store) \(fragment: claimCondition)
            RETURNING 1
            """)
        guard !rows.isEmpty else { throw lostClaim() }
    }

    public func release() async {
        _ = try? await pool.query("""
            UPDATE replicas SET claimed_by = NULL, claim_expires_at = NULL
            WHERE checkpoint_id = \(checkpointID) AND store_url = \(store) AND claimed_by = \(replicator)
            """)
    }

    /// Runs `statement` (which reads the CTE `mine`: one row when this replicator holds the claim,
    /// which it extends) and fails when the claim is lost.
    private func fenced(_ statement: PostgresQuery) async throws {
        let query: PostgresQuery = """
            WITH mine AS (
                UPDATE replicas SET claim_expires_at = now() + make_interval(secs => \(claimSeconds))
                WHERE checkpoint_id = \(checkpointID) AND store_url = \(store) AND claimed_by = \(replicator)
                RETURNING 1
            ),
            work AS (\(fragment: statement) RETURNING 1)
            SELECT (SELECT count(*) FROM mine)
            """
        let held = try await pool.query(query).scalar(Int64.self)
        guard held == 1 else { throw lostClaim() }
    }

    private func lostClaim() -> ReplicaClaimError {
        ReplicaClaimError(description: "the claim on \(checkpointID.prefix(12)) at \(store) was taken over by another replicator; stopping")
    }
}
