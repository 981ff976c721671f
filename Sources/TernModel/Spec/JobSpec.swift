/// A training job as the user described it, validated and with every default filled in.
///
/// This is the normalised form: its canonical JSON (``canonicalJSON``) is what PostgreSQL stores
/// and its SHA-256 (``specHash``) identifies it. The YAML format is documented in `docs/jobspec.md`;
/// ``JobSpecParser`` turns a file into this type or into located errors.
public struct JobSpec: Sendable, Hashable, Codable {
    public var name: String
    /// Nodes gang-scheduled together: all start or none do.
    public var nodes: Int
    public var resources: Resources
    /// A container image, for container targets; local and Slurm targets ignore it unless set.
    public var image: String?
    public var workdir: String
    public var env: [String: String]
    /// Names of secrets resolved at dispatch from the target's environment; values are never stored.
    public var secrets: [String]
    public var setup: String?
    public var run: String
    public var checkpoint: Checkpoint
    public var placement: Placement
    public var recovery: Recovery
    public var timeout: TimeSpan?
    public var priority: Int
    public var labels: [String: String]

    public struct Resources: Sendable, Hashable, Codable {
        public var accelerators: AcceleratorChoice?
        public var cpus: ResourceAmount<Int>?
        public var memory: ResourceAmount<ByteSize>?
        public var disk: ResourceAmount<ByteSize>?
        public var spot: SpotPolicy

        public init(accelerators: AcceleratorChoice? = nil, cpus: ResourceAmount<Int>? = nil, memory: ResourceAmount<ByteSize>? = nil,
                    disk: ResourceAmount<ByteSize>? = nil, spot: SpotPolicy = .never) {
            self.accelerators = accelerators
            self.cpus = cpus
            self.memory = memory
            self.disk = disk
            self.spot = spot
        }
    }

    public enum SpotPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// On-demand only (`spot: false`).
        case never = "false"
        /// Spot only (`spot: true`).
        case always = "true"
        /// Spot first, on-demand when no spot capacity is found (`spot: auto`).
        case auto
    }

    public struct Checkpoint: Sendable, Hashable, Codable {
        /// Where the job writes its step directories, relative to the working directory.
        public var dir: String
        public var format: CheckpointFormat
        /// Targets whose storage receives a copy of every committed checkpoint ahead of any failover.
        public var replicateTo: [String]
        /// How many committed checkpoints to keep per store; older ones are collected.
        public var keep: Int

        public init(dir: String = "checkpoints", format: CheckpointFormat = .auto, replicateTo: [String] = [], keep: Int = 3) {
            self.dir = dir
            self.format = format
            self.replicateTo = replicateTo
            self.keep = keep
        }

        enum CodingKeys: String, CodingKey {
            case dir, format, keep
            case replicateTo = "replicate_to"
        }
    }

    public enum CheckpointFormat: String, Sendable, Hashable, Codable, CaseIterable {
        case auto
        case marker
        case torchDCP = "torch-dcp"
        case orbax
        case megatron
        case deepspeed
    }

    public struct Placement: Sendable, Hashable, Codable {
        /// Candidate targets; empty means every registered target that fits.
        public var targets: [String]
        public var strategy: PlacementStrategy
        /// The most the job may cost per hour across all its nodes, in US dollars.
        public var maxHourlyCost: Double?

        public init(targets: [String] = [], strategy: PlacementStrategy = .cheapest, maxHourlyCost: Double? = nil) {
            self.targets = targets
            self.strategy = strategy
            self.maxHourlyCost = maxHourlyCost
        }

        enum CodingKeys: String, CodingKey {
            case targets, strategy
            case maxHourlyCost = "max_hourly_cost"
        }
    }

    public enum PlacementStrategy: String, Sendable, Hashable, Codable, CaseIterable {
        case cheapest
        case ordered
    }

    public struct Recovery: Sendable, Hashable, Codable {
        /// Restarts allowed after the job itself failed with a retryable exit code.
        public var maxRestartsOnErrors: Int
        /// Exit codes that mean "retry me" (for example 75, EX_TEMPFAIL).
        public var recoverOnExitCodes: [Int]
        public var onPreemption: PreemptionPolicy
        /// Preemptions and node losses tolerated before the job fails as `preempted_too_often`.
        public var maxPreemptions: Int

        public init(maxRestartsOnErrors: Int = 0, recoverOnExitCodes: [Int] = [], onPreemption: PreemptionPolicy = .failover, maxPreemptions: Int = 20) {
            self.maxRestartsOnErrors = maxRestartsOnErrors
            self.recoverOnExitCodes = recoverOnExitCodes
            self.onPreemption = onPreemption
            self.maxPreemptions = maxPreemptions
        }

        enum CodingKeys: String, CodingKey {
            case maxRestartsOnErrors = "max_restarts_on_errors"
            case recoverOnExitCodes = "recover_on_exit_codes"
            case onPreemption = "on_preemption"
            case maxPreemptions = "max_preemptions"
        }
    }

    public enum PreemptionPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// Move to the next candidate target.
        case failover
        /// Wait for capacity on the same target.
        case sameTarget = "same-target"
    }

    /// Every target name the spec refers to (placement and replication), without repeats.
    public var referencedTargets: [String] {
        var seen = Set<String>()
        return (placement.targets + checkpoint.replicateTo).filter { seen.insert($0).inserted }
    }

    /// Accelerators per node of the first choice, or 0 for a CPU-only job.
    public var gpusPerNode: Int { resources.accelerators?.requests.first?.count ?? 0 }

    /// Lower-case hex SHA-256 of ``canonicalJSON``: equal specs have equal hashes.
    public var specHash: String { CanonicalJSON.sha256Hex(ofText: canonicalJSON) }

    /// Both at once, encoding the spec only one time (submitting thousands of specs encodes each once).
    public var normalised: (json: String, hash: String) {
        let json = canonicalJSON
        return (json, CanonicalJSON.sha256Hex(ofText: json))
    }
}
