public import Foundation

/// Applies numbered migrations to a database and reports which are applied.
///
/// Each pending migration runs in its own transaction holding a transaction-scoped advisory lock, and
/// is recorded in `schema_migrations` with a SHA-256 checksum of its text (computed by the server).
/// Two processes may run the runner at once: the second waits on the lock, then sees the migration
/// recorded and skips it. A recorded migration whose file changed is refused, naming the file.
public struct MigrationRunner: Sendable {
    /// The key of the advisory lock every runner takes ("ternmigr" as a big-endian integer).
    public static let lockKey: Int64 = 8_387_235_699_655_010_162

    /// One migration's state in a database.
    public struct Status: Sendable, Hashable {
        /// The migration's version.
        public var version: Int
        /// The migration's name.
        public var name: String
        /// When it was applied; nil when pending.
        public var appliedAt: Date?
        /// True when the file no longer matches what was applied.
        public var changed: Bool
        /// True when the database has it but the directory does not (the database is newer than this program).
        public var unknown: Bool
    }

    let pool: PostgresPool
    let migrations: [Migration]

    /// A runner for these migrations against the pool's database.
    public init(pool: PostgresPool, migrations: [Migration]) {
        self.pool = pool
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Every migration, applied or pending, and any the database has that the files do not.
    public func status() async throws -> [Status] {
        try await ensureHistoryTable()
        let applied = try await appliedMigrations()
        let checksums = try await localChecksums()
        var statuses: [Status] = []
        for migration in migrations {
            let record = applied[migration.version]
            statuses.append(Status(
                version: migration.version, name: migration.name, appliedAt: record?.appliedAt,
                changed: record.map { $0.checksum != checksums[migration.version] } ?? false, unknown: false))
        }
        for (version, record) in applied where !migrations.contains(where: { $0.version == version }) {
            statuses.append(Status(version: version, name: record.name, appliedAt: record.appliedAt, changed: false, unknown: true))
        }
        return statuses.sorted { $0.version < $1.version }
    }

    /// Applies every pending migration in order.
    /// - Returns: the migrations this call applied (none when the database was up to date).
    /// - Throws: when an applied migration's file changed, when the database has a migration the files
    ///   lack, or when a migration fails (its transaction is rolled back and the error names the file).
    @discardableResult
    public func migrate() async throws -> [Migration] {
        try await ensureHistoryTable()
        let checksums = try await localChecksums()
        try verifyHistory(try await appliedMigrations(), checksums: checksums)
        var appliedNow: [Migration] = []
        for migration in migrations {
            let checksum = checksums[migration.version]!
            let didApply = try await pool.withTransaction { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
                // Another process may have applied it while we waited for the lock.
                let existing = try await connection.query("SELECT checksum FROM schema_migrations WHERE version = \(migration.version)")
                if let row = existing.first {
                    guard try row.decode(String.self, at: 0) == checksum else { throw changedError(migration) }
                    return false
                }
                let started = ContinuousClock.now
                do {
                    try await connection.simpleQuery(PostgresQuery(unsafeSQL: migration.sql))
                } catch var error as PostgresError {
                    error.message = "migration \(migration.fileName) failed: \(error.message)"
                    throw error
                }
                let elapsed = started.duration(to: .now)
                let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
                try await connection.query("""
                    INSERT INTO schema_migrations (version, name, checksum, execution_ms)
                    VALUES (\(migration.version), \(migration.name), \(checksum), \(milliseconds))
                    """)
                return true
            }
            if didApply { appliedNow.append(migration) }
        }
        return appliedNow
    }

    // MARK: Helpers

    private struct AppliedRecord {
        var name: String
        var checksum: String
        var appliedAt: Date
    }

    private func ensureHistoryTable() async throws {
        // Under the lock, so two first runs do not race on CREATE TABLE.
        try await pool.withTransaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
            try await connection.simpleQuery("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version      integer PRIMARY KEY,
                    name         text        NOT NULL,
                    checksum     text        NOT NULL,
                    applied_at   timestamptz NOT NULL DEFAULT now(),
                    execution_ms integer     NOT NULL DEFAULT 0
                )
                """)
        }
    }

    private func appliedMigrations() async throws -> [Int: AppliedRecord] {
        let rows = try await pool.query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        var applied: [Int: AppliedRecord] = [:]
        for row in rows {
            let (version, name, checksum, appliedAt) = try row.decode(Int.self, String.self, String.self, Date.self)
            applied[version] = AppliedRecord(name: name, checksum: checksum, appliedAt: appliedAt)
        }
        return applied
    }

    /// SHA-256 of each file's text, computed by the server so this module needs no hashing code.
    private func localChecksums() async throws -> [Int: String] {
        let texts = migrations.map(\.sql)
        let rows = try await pool.query("""
            SELECT encode(sha256(convert_to(t.sql, 'UTF8')), 'hex') FROM unnest(\(texts)::text[]) WITH ORDINALITY AS t(sql, n) ORDER BY n
            """)
        var checksums: [Int: String] = [:]
        for (migration, row) in zip(migrations, rows) {
            checksums[migration.version] = try row.decode(String.self, at: 0)
        }
        return checksums
    }

    private func verifyHistory(_ applied: [Int: AppliedRecord], checksums: [Int: String]) throws {
        for (version, record) in applied.sorted(by: { $0.key < $1.key }) {
            guard let migration = migrations.first(where: { $0.version == version }) else {
                throw PostgresError(
                    code: .migration,
                    message: "the database has migration \(version) (\(record.name)), which is not among this program's migration files; it was migrated by a newer version of Tern",
                    hint: "run a Tern at least as new as the one that migrated this database")
            }
            if record.checksum != checksums[version] { throw changedError(migration) }
        }
    }

    private func changedError(_ migration: Migration) -> PostgresError {
        PostgresError(
            code: .migration,
            message: "migrations/\(migration.fileName) was changed after it was applied to this database",
            hint: "restore the file as it was and put the change in a new migration with the next number")
    }
}
