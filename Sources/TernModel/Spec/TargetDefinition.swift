internal import Foundation
internal import Yams

/// The kinds of execution target Tern has an executor adapter for.
public enum ExecutorKind: String, Sendable, Hashable, Codable, CaseIterable {
    case local
    case slurm
    case kubernetes
    case awsBatch = "aws-batch"
    case gcpBatch = "gcp-batch"
    case azureBatch = "azure-batch"

    /// The settings each kind understands; anything else is reported as unknown.
    var settingKeys: [String] {
        switch self {
        case .local: ["root", "gpus", "slots"]
        case .slurm: ["partition", "account", "qos", "sbatch_args", "root"]
        case .kubernetes: ["api_server", "namespace", "queue", "service_account", "ca_file"]
        case .awsBatch: ["job_queue", "job_role_arn", "endpoint"]
        case .gcpBatch: ["project", "service_account", "endpoint"]
        case .azureBatch: ["account", "pool", "endpoint"]
        }
    }

    /// Settings a target of this kind cannot work without.
    var requiredSettings: [String] {
        switch self {
        case .local, .slurm: []
        case .kubernetes: ["api_server"]
        case .awsBatch: ["job_queue"]
        case .gcpBatch: ["project"]
        case .azureBatch: ["account", "pool"]
        }
    }

    /// "a slurm" or "an aws-batch", for messages.
    var article: String { (rawValue.first.map { "aeiou".contains($0) } ?? false ? "an " : "a ") + rawValue }

    /// Storage URL schemes that suit this kind (a local target may use any store).
    var storageSchemes: [String] {
        switch self {
        case .local, .slurm, .kubernetes: ["file", "s3", "gs", "az"]
        case .awsBatch: ["s3"]
        case .gcpBatch: ["gs"]
        case .azureBatch: ["az"]
        }
    }
}

/// One execution target: where jobs run and where their checkpoints are kept.
///
/// Holds no credentials: they come from the environment of whoever runs Tern, or from the file
/// named by `credentials_file`, read at the moment they are needed. The format is documented in
/// `docs/targets.md`.
public struct TargetDefinition: Sendable, Hashable, Codable {
    public var name: String
    public var kind: ExecutorKind
    public var region: String?
    /// Where checkpoints for jobs on this target are stored: `file:///…`, `s3://…`, `gs://…`, `az://…`.
    public var storage: String
    /// Node shapes this target offers, such as `H100:8`; empty means CPU only (or unknown for local).
    public var accelerators: [AcceleratorRequest]
    /// The most nodes one job may use here.
    public var maxNodes: Int
    /// Whether spot / preemptible capacity is offered.
    public var spot: Bool
    /// Executor settings (non-secret): queue names, partitions, endpoints.
    public var settings: [String: JSONValue]
    /// A file holding credentials for this target (read at use, never stored).
    public var credentialsFile: String?
    public var labels: [String: String]
    /// What one node costs per hour in US dollars, for targets the price catalogue does not cover
    /// (local, Slurm, Kubernetes); on a cloud target it overrides the catalogue. Nil: the catalogue's
    /// price for cloud targets, 0 for the others.
    public var hourlyCost: Double?
    /// The store's endpoint when it is not the cloud's public one: MinIO, R2, a private gateway,
    /// an emulator. Nil: the public endpoint (or AWS_ENDPOINT_URL / STORAGE_EMULATOR_HOST).
    public var storageEndpoint: String?

    enum CodingKeys: String, CodingKey {
        case name, kind, region, storage, accelerators, spot, settings, labels
        case maxNodes = "max_nodes"
        case credentialsFile = "credentials_file"
        case hourlyCost = "hourly_cost"
        case storageEndpoint = "storage_endpoint"
    }

    public init(name: String, kind: ExecutorKind, region: String?, storage: String, accelerators: [AcceleratorRequest], maxNodes: Int,
                spot: Bool, settings: [String: JSONValue], credentialsFile: String?, labels: [String: String], hourlyCost: Double? = nil,
                storageEndpoint: String? = nil) {
        self.name = name
        self.kind = kind
        self.region = region
        self.storage = storage
        self.accelerators = accelerators
        self.maxNodes = maxNodes
        self.spot = spot
        self.settings = settings
        self.credentialsFile = credentialsFile
        self.labels = labels
        self.hourlyCost = hourlyCost
        self.storageEndpoint = storageEndpoint
    }

    /// SHA-256 of the canonical JSON, so re-applying an unchanged file writes nothing.
    public var configHash: String { CanonicalJSON.sha256Hex(of: self) }

    /// Whether this target can run a job with this spec, and if not, why.
    public func fits(_ spec: JobSpec) -> String? {
        if spec.nodes > maxNodes { return "needs \(spec.nodes) nodes; \(name) allows \(maxNodes)" }
        if spec.resources.spot == .always && !spot { return "needs spot capacity; \(name) offers none" }
        if let choice = spec.resources.accelerators, kind != .local || !accelerators.isEmpty {
            let fits = choice.requests.contains { request in
                accelerators.contains { $0.name == request.name && $0.count >= request.count }
            }
            if !fits {
                let offered = accelerators.isEmpty ? "none" : accelerators.map(\.description).joined(separator: ", ")
                return "needs \(choice.requests.map(\.description).joined(separator: " or ")); \(name) offers \(offered)"
            }
        }
        return nil
    }
}

/// Reads a targets file: `targets:` mapping names to definitions.
public enum TargetsFileParser {
    static let targetKeys = ["kind", "region", "storage", "accelerators", "max_nodes", "spot", "settings", "credentials_file", "labels", "hourly_cost",
                             "storage_endpoint"]
    /// Setting names that look like they hold a secret; those belong in the environment or a file.
    static let secretHints = ["secret", "password", "token", "access_key", "private_key", "credential", "sas", "api_key", "account_key"]

    public static func parse(fileAt path: String) -> Result<[TargetDefinition], SpecValidationError> {
        switch SpecFile.read(path) {
        case .success(let text): parse(text, file: path)
        case .failure(let error): .failure(error)
        }
    }

    public static func parse(_ text: String, file: String) -> Result<[TargetDefinition], SpecValidationError> {
        parse(text, file: file, keysAsText: true)
    }

    /// `keysAsText: false` composes with `Resolver.default` only, for tests that compare both ways.
    static func parse(_ text: String, file: String, keysAsText: Bool) -> Result<[TargetDefinition], SpecValidationError> {
        let sink = DiagnosticSink(file: file)
        let what = "a mapping with targets: NAME: {kind, storage, ...}"
        guard let root = SpecFile.compose(text, sink: sink, what: what, keysAsText: keysAsText) else { return .failure(SpecValidationError(sink.diagnostics)) }
        var definitions: [TargetDefinition] = []
        if let document = YAMLCursor(node: root, path: "", sink: sink).mapping(what: what) {
            if let targets = document.required("targets", what: "a mapping of target names to their definitions"),
               let mapping = targets.mapping(what: "a mapping of target names to their definitions") {
                for entry in mapping.entries {
                    _ = mapping[entry.key]
                    let keyField = YAMLCursor(node: entry.keyNode, path: entry.value.path, sink: sink)
                    guard Names.isResourceName(entry.key) else {
                        let suggestion = Names.suggestedResourceName(entry.key).map { "; try \"\($0)\"" } ?? ""
                        keyField.report("expected a target name (\(Names.resourceNameRule)), found \"\(YAMLCursor.truncated(entry.key))\"\(suggestion)")
                        continue
                    }
                    if let definition = readTarget(entry.key, entry.value) { definitions.append(definition) }
                }
                if mapping.entries.isEmpty { targets.report("expected at least one target, found none") }
            }
            document.rejectUnknownKeys(known: ["targets"])
        }
        return sink.diagnostics.isEmpty ? .success(definitions) : .failure(SpecValidationError(sink.diagnostics))
    }

    private static func readTarget(_ name: String, _ field: YAMLCursor) -> TargetDefinition? {
        guard let mapping = field.mapping(what: "a target definition: a mapping with kind and storage") else { return nil }
        let kind = mapping.required("kind", what: "one of \(YAMLCursor.list(ExecutorKind.allCases.map(\.rawValue)))").flatMap { $0.choice(ExecutorKind.self) }
        let region = mapping["region"].flatMap { $0.nonEmptyString(what: "a region name such as us-east-1") }
        let storage = mapping.required("storage", what: "a storage URL such as s3://bucket/prefix or file:///srv/tern").flatMap { readStorage($0, kind: kind) }
        var accelerators: [AcceleratorRequest] = []
        if let field = mapping["accelerators"], let elements = field.sequence(what: "a list of node shapes such as [H100:8]") {
            for element in elements {
                guard let text = element.string(what: "a node shape such as H100:8") else { continue }
                let parts = text.split(separator: ":")
                guard parts.count == 2, let count = Int(parts[1]), (1...AcceleratorRequest.maxCountPerNode).contains(count),
                      parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                    let rewrite = JobSpecReader.acceleratorRewrite(text).map { "; write \($0)" } ?? ""
                    element.report("expected a node shape such as H100:8, found \"\(YAMLCursor.truncated(text))\"\(rewrite)")
                    continue
                }
                let canonical = AcceleratorRequest.knownNames.first { $0.lowercased() == parts[0].lowercased() } ?? String(parts[0])
                accelerators.append(AcceleratorRequest(name: canonical, count: count))
            }
        }
        let maxNodes = mapping["max_nodes"].map { $0.integer(in: 1...4096, what: "a node count") } ?? 1
        let spot = mapping["spot"].map { $0.bool() } ?? false
        let settings = mapping["settings"].flatMap { readSettings($0, kind: kind) } ?? [:]
        if mapping["settings"] == nil, let kind, !kind.requiredSettings.isEmpty {
            let path = field.path.isEmpty ? "settings" : "\(field.path).settings"
            field.sink.report(field.node, path, "missing required field; expected a mapping with \(YAMLCursor.list(kind.requiredSettings)) for \(kind.article) target")
        }
        let credentialsFile = mapping["credentials_file"].flatMap { $0.nonEmptyString(what: "a path to a credentials file") }
        let labels = mapping["labels"].flatMap(JobSpecReader.readLabels) ?? [:]
        var hourlyCost: Double?
        if let field = mapping["hourly_cost"], let value = field.number(what: "a price in US dollars per node-hour") {
            if value < 0 || !value.isFinite {
                field.report("expected a price of 0 or more in US dollars per node-hour, found \(YAMLCursor.truncated(field.scalarText ?? ""))")
            } else {
                hourlyCost = value
            }
        }
        var storageEndpoint: String?
        if let field = mapping["storage_endpoint"], let text = field.nonEmptyString(what: "an endpoint URL such as http://minio.internal:9000") {
            if let components = URLComponents(string: text), ["http", "https"].contains(components.scheme?.lowercased() ?? ""),
               !(components.host ?? "").isEmpty, components.user == nil, components.password == nil, components.query == nil {
                storageEndpoint = text
            } else {
                // Not repeated: it may hold a secret.
                field.report("expected an http:// or https:// endpoint URL without credentials or query parameters, such as http://minio.internal:9000")
            }
        }
        mapping.rejectUnknownKeys(known: targetKeys)
        guard let kind, let storage, let maxNodes, let spot else { return nil }
        return TargetDefinition(name: name, kind: kind, region: region, storage: storage, accelerators: accelerators, maxNodes: maxNodes,
                                spot: spot, settings: settings, credentialsFile: credentialsFile, labels: labels, hourlyCost: hourlyCost,
                                storageEndpoint: storageEndpoint)
    }

    private static func readStorage(_ field: YAMLCursor, kind: ExecutorKind?) -> String? {
        guard let text = field.nonEmptyString(what: "a storage URL") else { return nil }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              ["file", "s3", "gs", "az"].contains(scheme) else {
            field.report("expected a storage URL starting with file://, s3://, gs:// or az://, found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        if components.user != nil || components.password != nil || components.query != nil {
            // The URL itself is not repeated: it may hold a secret.
            let found = components.query != nil && components.user == nil && components.password == nil ? "a query string (?...)" : "a user name or password (...@)"
            field.report("expected a storage URL without credentials or query parameters, found \(found) in it; credentials come from the environment or credentials_file")
            return nil
        }
        if scheme == "file" {
            guard components.host.map({ $0.isEmpty || $0 == "localhost" }) ?? true, components.path.hasPrefix("/") else {
                field.report("expected an absolute file URL such as file:///srv/tern/checkpoints, found \"\(YAMLCursor.truncated(text))\"")
                return nil
            }
        } else if (components.host ?? "").isEmpty {
            field.report("expected \(scheme)://\(scheme == "az" ? "ACCOUNT/CONTAINER" : "BUCKET")/prefix, found \"\(YAMLCursor.truncated(text))\"")
            return nil
        }
        if let kind, !kind.storageSchemes.contains(scheme) {
            field.report("expected \(kind.storageSchemes.map { "\($0)://" }.joined(separator: " or ")) storage for \(kind.article) target, found \(scheme)://")
            return nil
        }
        return text
    }

    private static func readSettings(_ field: YAMLCursor, kind: ExecutorKind?) -> [String: JSONValue]? {
        guard let mapping = field.mapping(what: "a mapping of executor settings") else { return nil }
        var settings: [String: JSONValue] = [:]
        for entry in mapping.entries {
            let lowered = entry.key.lowercased()
            if secretHints.contains(where: lowered.contains) {
                _ = mapping[entry.key]
                YAMLCursor(node: entry.keyNode, path: entry.value.path, sink: field.sink)
                    .report("expected non-secret settings, found \(YAMLCursor.truncated(entry.key)), which looks like a credential; credentials never go in a targets file: set them in the environment or name a file with credentials_file")
                continue
            }
            guard let kind, kind.settingKeys.contains(entry.key) else { continue }
            _ = mapping[entry.key]
            if let value = jsonValue(entry.value) { settings[entry.key] = value }
        }
        if let kind {
            for key in kind.requiredSettings where settings[key] == nil {
                field.sink.report(field.node, "\(field.path).\(key)", "missing required setting; expected \(key) for \(kind.article) target")
            }
            mapping.rejectUnknownKeys(known: kind.settingKeys)
        }
        return settings
    }

    /// Scalars and lists of scalars, typed as YAML resolved them.
    private static func jsonValue(_ field: YAMLCursor) -> JSONValue? {
        switch field.node {
        case .scalar:
            if field.isNull { return .null }
            let text = field.scalarText ?? ""
            if field.isPlain(.int), let value = Int64(text) { return .integer(value) }
            if field.isPlain(.bool) { return .bool(field.bool() ?? false) }
            if field.isPlain(.float), let value = Double(text) { return .double(value) }
            return .string(text)
        case .sequence:
            guard let elements = field.sequence(what: "a list") else { return nil }
            var values: [JSONValue] = []
            for element in elements {
                guard case .scalar = element.node, let text = element.scalarText else {
                    element.report("expected a string, found \(element.found)")
                    return nil
                }
                values.append(.string(text))
            }
            return .array(values)
        default:
            field.report("expected a value or a list of values, found \(field.found)")
            return nil
        }
    }
}

/// The registered targets a spec allows (its placement.targets, or all of them) split into those
/// that can run it and those that cannot, with why.
public struct CandidateTargets: Sendable {
    public var fitting: [TargetDefinition] = []
    public var rejected: [(name: String, reason: String)] = []

    public init(spec: JobSpec, registered: [TargetDefinition]) {
        let allowed = spec.placement.targets.isEmpty
            ? registered.sorted { $0.name < $1.name }
            : spec.placement.targets.compactMap { name in registered.first { $0.name == name } }
        for target in allowed {
            if let reason = target.fits(spec) { rejected.append((target.name, reason)) } else { fitting.append(target) }
        }
    }
}
