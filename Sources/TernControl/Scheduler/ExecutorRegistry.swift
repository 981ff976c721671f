public import TernExecutors
public import TernModel

/// Which executor runs attempts on which target kind. One instance per kind is shared by all of a
/// replica's jobs (the local executor keeps a little state; the Slurm one batches its queries).
public struct ExecutorRegistry: Sendable {
    private let executors: [ExecutorKind: any Executor]
    /// When set, every target uses this executor (the scheduler benchmark's and tests' `NoopExecutor`).
    private let override: (any Executor)?

    public init(executors: [ExecutorKind: any Executor], override: (any Executor)? = nil) {
        self.executors = executors
        self.override = override
    }

    /// The executors Tern ships: local processes and Slurm.
    public static func standard(home: String) -> ExecutorRegistry {
        ExecutorRegistry(executors: [.local: LocalExecutor(home: home), .slurm: SlurmExecutor(home: home)])
    }

    /// Every target runs on `executor`.
    public static func only(_ executor: any Executor) -> ExecutorRegistry {
        ExecutorRegistry(executors: [:], override: executor)
    }

    /// The executor for `target`, or nil when this Tern has none for its kind yet.
    public func executor(for target: TargetDefinition) -> (any Executor)? {
        override ?? executors[target.kind]
    }
}
