public import TernModel
import Synchronization

/// An executor that runs nothing: a launch is recorded in memory and the attempt reports that it
/// exited 0 on the first status call. It measures the scheduler alone (`make bench`'s scheduler
/// throughput) and lets tests count launches per key across scheduler replicas in one process.
///
/// It is never chosen for a target by Tern itself; a scheduler uses it only when built with it.
public final class NoopExecutor: Executor {
    private let launched = Mutex<[String: Int]>([:])
    private let onLaunch: (@Sendable (String) -> Void)?

    /// - Parameter onLaunch: called with each key as it is launched (the benchmark times
    ///   submit-to-launch with it).
    public init(onLaunch: (@Sendable (String) -> Void)? = nil) {
        self.onLaunch = onLaunch
    }

    public func launch(_ request: LaunchRequest) async throws -> String {
        launched.withLock { $0[request.plan.key, default: 0] += 1 }
        onLaunch?(request.plan.key)
        return "noop:" + request.plan.key
    }

    public func find(key: String, target: TargetDefinition) async throws -> String? {
        launched.withLock { $0[key] } == nil ? nil : "noop:" + key
    }

    public func status(of attempts: [AttemptHandle]) async throws -> [String: ExecutorStatus] {
        let known = launched.withLock { $0 }
        var statuses: [String: ExecutorStatus] = [:]
        for attempt in attempts {
            statuses[attempt.key] = known[attempt.key] == nil ? .notFound : .exited(code: 0)
        }
        return statuses
    }

    public func stop(_ attempt: AttemptHandle, grace: Duration) async throws {}

    public func logFile(_ attempt: AttemptHandle, node: Int) -> String? { nil }

    /// How many times each key was launched (a correct scheduler launches each once).
    public var launchCounts: [String: Int] { launched.withLock { $0 } }
}
