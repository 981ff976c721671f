import Foundation

/// How a scheduler replica behaves: its name, how long its leases last, how often it polls, and
/// what it hands the agents. The defaults suit production; tests shorten the times.
public struct SchedulerConfiguration: Sendable {
    /// Names the replica in `jobs.lease_owner` and `attempts.scheduler` (`--replica-id`). The
    /// lease owner adds `@host:pid`, so two processes given the same id still hold apart leases.
    public var replicaID: String
    /// How long a claim lasts without renewal; a replica renews its jobs at a third of this. A
    /// replica that stops renewing (crashed, partitioned) loses its jobs to another after this long.
    public var leaseDuration: Duration = .seconds(30)
    /// How often live attempts are asked for their status.
    public var pollInterval: Duration = .seconds(1)
    /// How often to look for jobs whose replica is gone (lease expired, or a dead process on this host).
    public var orphanScanInterval: Duration = .seconds(5)
    /// Jobs claimed per statement.
    public var claimBatch: Int = 500
    /// The most jobs one replica drives at once.
    public var maxOwnedJobs: Int = 10_000
    /// Executor launches (and stops) at once.
    public var launchParallelism: Int = 16
    /// A running attempt whose agent has heartbeated before but not for this long is lost.
    public var heartbeatTimeout: Duration = .seconds(60)
    /// What the agents are told (`AttemptPlan`).
    public var agentHeartbeat: Duration = .seconds(5)
    public var agentCheckpointPoll: Duration = .seconds(1)
    /// How long a stopping attempt gets to checkpoint and exit before it is killed.
    public var stopGrace: Duration = .seconds(30)
    /// Backoff before a retry after a retryable exit code: `retryBackoff × 2^(n−1)` for the n-th
    /// retry, at most `maxBackoff`. Failover after the first preemption or loss is immediate;
    /// later ones back off the same way.
    public var retryBackoff: Duration = .seconds(5)
    public var maxBackoff: Duration = .seconds(300)
    /// The `tern` program nodes run as `tern agent`.
    public var agentProgram: String
    /// The connection string agents use (`TERN_DATABASE_URL` in their environment, never in a file).
    public var agentDatabaseURL: String
    /// Where relative workdirs go when a job has no submit directory, and the local executor's root.
    public var home: String
    /// The price catalogue (`catalog/gpu-offers.csv`); nil or missing: no catalogue prices (cloud
    /// targets without `hourly_cost` are then left out, local and Slurm ones cost what they say).
    public var catalogPath: String?
    /// How long an offer stays blocked after a capacity refusal.
    public var capacityBlock: Duration = .seconds(600)
    /// Checkpoint moves (failover, migration, pre-replication) at once.
    public var moveParallelism = 2
    /// How often running jobs' newest checkpoints are checked against `checkpoint.replicate_to`.
    public var preReplicationInterval: Duration = .seconds(2)
    /// Where checkpoints in transit between stores are kept (default `<home>/scratch`).
    public var scratch: String?
    /// The environment secrets are read from at dispatch.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Called at named points (`after-claim`, `after-attempt-row`, `after-launch`, `after-record`);
    /// a crash test kills the process there.
    public var faultPoint: (@Sendable (String) -> Void)?

    public init(replicaID: String, agentProgram: String, agentDatabaseURL: String, home: String) {
        self.replicaID = replicaID
        self.agentProgram = agentProgram
        self.agentDatabaseURL = agentDatabaseURL
        self.home = home
    }
}
