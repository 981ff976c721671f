public import Foundation
public import TernModel
public import TernPostgres

/// A stored target (a `targets` row), as `tern targets list` shows it. The full definition is
/// ``TargetRepository/definitions()``.
public struct TargetRecord: Sendable, Hashable, Codable {
    public var name: String
    /// The executor kind's raw value (`aws-batch`, ...); text, so a kind added by a newer Tern reads.
    public var kind: String
    /// The executor settings as JSON object text, exactly as PostgreSQL prints the stored `jsonb`.
    ///
    /// Kept as text rather than `[String: String]` because settings are typed JSON values (numbers,
    /// booleans, lists) and each executor reads its own settings from them. The text is the same
    /// JSON value as the one applied, not the same bytes (`jsonb` reorders keys and adds spaces);
    /// compare ``configHash``, not this.
    public var settingsJSON: String
    /// Where the target's checkpoints live (`s3://bucket/prefix`, `file:///srv/tern`).
    public var storageURL: String
    public var region: String?
    public var labels: [String: String]
    /// SHA-256 (hex) of the definition's canonical JSON.
    public var configHash: String
    /// Set by the database.
    public var createdAt: Date
    /// Set by the database whenever the row changes.
    public var updatedAt: Date

    public init(
        name: String, kind: String, settingsJSON: String, storageURL: String, region: String?, labels: [String: String],
        configHash: String, createdAt: Date, updatedAt: Date
    ) {
        self.name = name
        self.kind = kind
        self.settingsJSON = settingsJSON
        self.storageURL = storageURL
        self.region = region
        self.labels = labels
        self.configHash = configHash
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What ``TargetRepository/apply(_:)`` did, name by name, each list in input order.
public struct ApplySummary: Sendable, Hashable, Codable {
    /// Targets that did not exist before.
    public var created: [String]
    /// Targets whose configuration hash changed; their rows were rewritten.
    public var updated: [String]
    /// Targets whose configuration hash was equal; their rows were left alone.
    public var unchanged: [String]

    public init(created: [String] = [], updated: [String] = [], unchanged: [String] = []) {
        self.created = created
        self.updated = updated
        self.unchanged = unchanged
    }
}

/// A target ``TargetRepository`` cannot store or read back.
public enum TargetApplyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The same name appears more than once in one apply (nothing was written).
    case duplicateName(String)
    /// A stored definition does not decode as this Tern's `TargetDefinition` (it was applied by a
    /// different version); applying the targets file again rewrites it.
    case unreadableDefinition(name: String, reason: String)

    public var description: String {
        switch self {
        case .duplicateName(let name):
            "target \"\(name)\" is defined more than once; each target needs its own name"
        case .unreadableDefinition(let name, let reason):
            "the stored definition of target \"\(name)\" cannot be read by this version of Tern (\(reason)); apply its targets file again"
        }
    }
}

/// The `targets` table.
public struct TargetRepository: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Creates or updates targets by name, in one statement (so one transaction): a target whose
    /// `configHash` equals the stored one is left untouched (not even `updated_at` moves). Targets
    /// not named are kept: attempts refer to targets, so removing one is a separate, deliberate act.
    ///
    /// - Throws: ``TargetApplyError/duplicateName(_:)`` for a name given twice, or a
    ///   `PostgresError` when a row breaks the schema; then nothing is written.
    @discardableResult
    public func apply(_ targets: [TargetDefinition]) async throws -> ApplySummary {
        var seen = Set<String>()
        for target in targets where !seen.insert(target.name).inserted {
            throw TargetApplyError.duplicateName(target.name)
        }
        if targets.isEmpty { return ApplySummary() }

        let names = targets.map(\.name)
        let kinds = targets.map(\.kind.rawValue)
        let settings = targets.map { CanonicalJSON.string(of: $0.settings) }
        let storage = targets.map(\.storage)
        let regions = NullableTextArray(targets.map(\.region))
        let labels = targets.map { CanonicalJSON.string(of: $0.labels) }
        let hashes = targets.map(\.configHash)
        let definitions = targets.map { CanonicalJSON.string(of: $0) }
        // Rows go in name order, so concurrent applies lock rows in the same order and cannot deadlock.
        // The WHERE on DO UPDATE skips equal rows: they are neither rewritten nor returned.
        // `xmax = 0` tells a freshly inserted row from an updated one (an updated row version
        // carries the updating transaction in xmax); it is the usual upsert idiom.
        let rows = try await pool.query("""
            INSERT INTO targets AS t (name, kind, settings, storage_url, region, labels, config_hash, definition)
            SELECT name, kind, settings::jsonb, storage_url, region, labels::jsonb, config_hash, definition::jsonb
            FROM unnest(\(names)::text[], \(kinds)::text[], \(settings)::text[], \(storage)::text[], \(regions)::text[],
                        \(labels)::text[], \(hashes)::text[], \(definitions)::text[])
                 AS i(name, kind, settings, storage_url, region, labels, config_hash, definition)
            ORDER BY name
            ON CONFLICT (name) DO UPDATE SET
                kind = excluded.kind, settings = excluded.settings, storage_url = excluded.storage_url,
                region = excluded.region, labels = excluded.labels, config_hash = excluded.config_hash,
                definition = excluded.definition
            WHERE t.config_hash IS DISTINCT FROM excluded.config_hash
            RETURNING t.name, (t.xmax = 0) AS created
            """)
        var written: [String: Bool] = [:]
        for row in rows {
            let (name, created) = try row.decode(String.self, Bool.self)
            written[name] = created
        }
        var summary = ApplySummary()
        for target in targets {
            switch written[target.name] {
            case true?: summary.created.append(target.name)
            case false?: summary.updated.append(target.name)
            case nil: summary.unchanged.append(target.name)
            }
        }
        return summary
    }

    /// Every target's definition as it was applied, by name: what placement and `tern submit`
    /// check jobs against.
    public func definitions() async throws -> [TargetDefinition] {
        let rows = try await pool.query("SELECT name, definition FROM targets ORDER BY name")
        return try rows.map { row in
            let (name, text) = try row.decode(String.self, String.self)
            do {
                return try CanonicalJSON.decode(TargetDefinition.self, from: text)
            } catch {
                throw TargetApplyError.unreadableDefinition(name: name, reason: "\(error)")
            }
        }
    }

    /// Every target row, by name.
    public func list() async throws -> [TargetRecord] {
        let rows = try await pool.query("""
            SELECT name, kind, settings, storage_url, region, labels, config_hash, created_at, updated_at
            FROM targets ORDER BY name
            """)
        return try rows.map { row in
            let (name, kind, settings, storageURL, region, labels, configHash, createdAt, updatedAt) = try row.decode(
                String.self, String.self, String.self, String.self, String?.self, PostgresJSON<[String: String]>.self,
                String.self, Date.self, Date.self)
            return TargetRecord(
                name: name, kind: kind, settingsJSON: settings, storageURL: storageURL, region: region, labels: labels.value,
                configHash: configHash, createdAt: createdAt, updatedAt: updatedAt)
        }
    }

    /// The target every embedded installation has without configuration: this machine's processes
    /// (the local executor), with a file store under `$TERN_HOME/stores/local`.
    public static func defaultLocal(home: String) -> TargetDefinition {
        TargetDefinition(name: "local", kind: .local, region: nil, storage: "file://\(home)/stores/local", accelerators: [], maxNodes: 8,
                         spot: false, settings: [:], credentialsFile: nil, labels: ["default": "true"])
    }

    /// Stores `target` unless a target of that name exists: a user's own definition of the name wins.
    /// - Returns: true when it was stored now.
    @discardableResult
    public func ensure(_ target: TargetDefinition) async throws -> Bool {
        if try await !existing(names: [target.name]).isEmpty { return false }
        return try await !apply([target]).created.isEmpty
    }

    /// Which of `names` are stored targets (to check a spec's `placement.targets` before submitting).
    public func existing(names: [String]) async throws -> Set<String> {
        if names.isEmpty { return [] }
        let rows = try await pool.query("SELECT name FROM targets WHERE name = ANY(\(names)::text[])")
        return Set(try rows.map { try $0.decode(String.self, at: 0) })
    }
}

/// A `text[]` parameter whose elements may be NULL (`[String?]` has no encoding of its own).
struct NullableTextArray: PostgresEncodable {
    var elements: [String?]

    init(_ elements: [String?]) {
        self.elements = elements
    }

    static var postgresDataType: PostgresDataType { .textArray }

    /// Array literal text: NULL unquoted, every other element quoted with `"` and `\` escaped.
    func postgresText() throws(PostgresError) -> String {
        var out = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { out += "," }
            guard let element else {
                out += "NULL"
                continue
            }
            out += "\""
            for scalar in element.unicodeScalars {
                if scalar == "\"" || scalar == "\\" { out += "\\" }
                out.unicodeScalars.append(scalar)
            }
            out += "\""
        }
        return out + "}"
    }
}
