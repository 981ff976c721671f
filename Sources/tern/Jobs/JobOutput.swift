import Foundation
import TernControl
import TernModel

/// The JSON shape of a job in `tern submit --json`, `tern jobs --json` and `tern show --json`.
///
/// Documented in docs/cli.md; fields are only ever added, never renamed or removed.
struct JobSummaryJSON: Encodable {
    var id: String
    var name: String
    var state: String
    var failureReason: String?
    var priority: Int
    var labels: [String: String]
    var specHash: String
    var target: String?
    var restarts: Int
    var createdAt: Date
    var updatedAt: Date
    var finishedAt: Date?

    init(_ record: JobRecord) {
        id = record.id.uuidString.lowercased()
        name = record.name
        state = record.state.rawValue
        failureReason = record.failureReason
        priority = record.priority
        labels = record.labels
        specHash = record.specHash
        target = record.target
        restarts = record.restarts
        createdAt = record.createdAt
        updatedAt = record.updatedAt
        finishedAt = record.finishedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, state, priority, labels, target, restarts
        case failureReason = "failure_reason"
        case specHash = "spec_hash"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case finishedAt = "finished_at"
    }

    /// Nulls are written out, so every key is always present for scripts.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(state, forKey: .state)
        try container.encode(failureReason, forKey: .failureReason)
        try container.encode(priority, forKey: .priority)
        try container.encode(labels, forKey: .labels)
        try container.encode(specHash, forKey: .specHash)
        try container.encode(target, forKey: .target)
        try container.encode(restarts, forKey: .restarts)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
    }
}

/// The JSON shape of one event in `tern events --json` and `tern show --json`.
struct JobEventJSON: Encodable {
    var id: Int64
    var at: Date
    var kind: String
    var fromState: String?
    var toState: String?
    var reason: String?
    var message: String?

    init(_ event: JobEventRecord) {
        id = event.id
        at = event.at
        kind = event.kind
        fromState = event.fromState
        toState = event.toState
        reason = event.reason
        message = event.message
    }

    enum CodingKeys: String, CodingKey {
        case id, at, kind, reason, message
        case fromState = "from_state"
        case toState = "to_state"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(at, forKey: .at)
        try container.encode(kind, forKey: .kind)
        try container.encode(fromState, forKey: .fromState)
        try container.encode(toState, forKey: .toState)
        try container.encode(reason, forKey: .reason)
        try container.encode(message, forKey: .message)
    }
}

/// Short ids for tables: the first 8 hex digits, enough to pass back as JOB while unique.
func shortID(_ id: UUID) -> String { String(id.uuidString.lowercased().prefix(8)) }

/// The labels as `k=v,k=v`, sorted, for tables.
func labelText(_ labels: [String: String]) -> String {
    labels.isEmpty ? "-" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
}
