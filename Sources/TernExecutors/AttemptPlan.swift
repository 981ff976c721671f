public import Foundation
public import TernModel

/// Everything a node's `tern agent` needs to run its part of an attempt, written by the executor as
/// `attempt.json` in the attempt's directory before any node starts.
///
/// It holds no secret: secret *names* only (values reach the agent in its environment, as does the
/// database connection string), so the file may be read by anyone who can read the attempt's logs.
public struct AttemptPlan: Sendable, Hashable, Codable {
    public var jobID: UUID
    public var jobName: String
    public var attemptID: UUID
    /// 1, 2, … per job (`TERN_ATTEMPT`).
    public var attemptNumber: Int
    public var key: String
    public var target: String
    /// The target's store, where checkpoints are committed and restored from.
    public var storage: String
    public var storageRegion: String?
    /// The store's endpoint when not the cloud's public one (the target's `storage_endpoint`).
    public var storageEndpoint: String?
    public var credentialsFile: String?
    public var nodes: Int
    public var gpusPerNode: Int
    /// The absolute directory `setup` and `run` start in.
    public var workdir: String
    public var setup: String?
    public var run: String
    /// The spec's `env` (never secrets).
    public var environment: [String: String]
    /// Names of the secrets whose values the agent finds in its own environment.
    public var secretNames: [String]
    public var checkpointFormat: JobSpec.CheckpointFormat
    /// The spec's `checkpoint.dir`, relative (the agent puts it under the attempt's directory).
    public var checkpointDirectory: String
    /// The checkpoint to restore before the job starts, or nil for a fresh start.
    public var resume: ResumePoint?
    /// The rendezvous address and port of rank 0, when the executor chose them (local); nil when the
    /// agent derives them from its cluster's environment (Slurm).
    public var masterAddress: String?
    public var masterPort: Int?
    /// Every node's address in rank order, when the executor knows them.
    public var nodeAddresses: [String]?
    /// Per node, the GPU indices the node may use (`CUDA_VISIBLE_DEVICES`), when the target hands
    /// out a fixed set.
    public var nodeDevices: [[String]]?
    /// How often the agent heartbeats and scans for new checkpoints.
    public var heartbeatSeconds: Double
    public var checkpointPollSeconds: Double
    /// How long the job gets to checkpoint and exit after a stop request before it is killed.
    public var graceSeconds: Double

    public init(
        jobID: UUID, jobName: String, attemptID: UUID, attemptNumber: Int, key: String, target: String, storage: String,
        storageRegion: String?, credentialsFile: String?, nodes: Int, gpusPerNode: Int, workdir: String, setup: String?, run: String,
        environment: [String: String], secretNames: [String], checkpointFormat: JobSpec.CheckpointFormat, checkpointDirectory: String,
        resume: ResumePoint?, masterAddress: String? = nil, masterPort: Int? = nil, nodeAddresses: [String]? = nil,
        nodeDevices: [[String]]? = nil, heartbeatSeconds: Double = 5, checkpointPollSeconds: Double = 1, graceSeconds: Double = 30
    ) {
        self.jobID = jobID
        self.jobName = jobName
        self.attemptID = attemptID
        self.attemptNumber = attemptNumber
        self.key = key
        self.target = target
        self.storage = storage
        self.storageRegion = storageRegion
        self.credentialsFile = credentialsFile
        self.nodes = nodes
        self.gpusPerNode = gpusPerNode
        self.workdir = workdir
        self.setup = setup
        self.run = run
        self.environment = environment
        self.secretNames = secretNames
        self.checkpointFormat = checkpointFormat
        self.checkpointDirectory = checkpointDirectory
        self.resume = resume
        self.masterAddress = masterAddress
        self.masterPort = masterPort
        self.nodeAddresses = nodeAddresses
        self.nodeDevices = nodeDevices
        self.heartbeatSeconds = heartbeatSeconds
        self.checkpointPollSeconds = checkpointPollSeconds
        self.graceSeconds = graceSeconds
    }
}

/// The checkpoint an attempt resumes from.
public struct ResumePoint: Sendable, Hashable, Codable {
    /// The checkpoint id (manifest digest).
    public var checkpointID: String
    /// The step the job recorded for it.
    public var step: Int64

    public init(checkpointID: String, step: Int64) {
        self.checkpointID = checkpointID
        self.step = step
    }
}

/// What the scheduler asks an executor to start.
public struct LaunchRequest: Sendable {
    /// The attempt as the agents will see it.
    public var plan: AttemptPlan
    public var target: TargetDefinition
    /// The spec's `timeout`, which batch systems enforce too (Slurm's `--time`).
    public var timeLimit: TimeSpan?
    /// Added to the environment of every node's agent and never written to a file: the database
    /// connection string (`TERN_DATABASE_URL`) and the secrets' values.
    public var privateEnvironment: [String: String]
    /// The `tern` program the nodes run as `tern agent`.
    public var agentProgram: String

    public init(plan: AttemptPlan, target: TargetDefinition, timeLimit: TimeSpan?, privateEnvironment: [String: String], agentProgram: String) {
        self.plan = plan
        self.target = target
        self.timeLimit = timeLimit
        self.privateEnvironment = privateEnvironment
        self.agentProgram = agentProgram
    }
}
