import Foundation
import Glibc
public import TernModel

/// Runs attempts as processes on this machine: one `tern agent` per node, each in a session of its
/// own, with the rank environment of DESIGN §3 and the node's output in `node-<r>.log`.
///
/// All state is in the attempt's directory, `<root>/attempts/<key>` (``AttemptDirectory``), where
/// `root` is the target's `root` setting or `$TERN_HOME/local/<target>`. Launching makes that
/// directory first, so a second launch with the same key (a retry, or a replica that took the
/// lease over) finds it and starts only the nodes that never started. Status comes from the
/// agents' result files and their pids (with kernel start times, so a reused pid is not mistaken
/// for the agent); so does adoption after a scheduler restart.
///
/// Settings: `root`, `slots` (node processes at once across the target's attempts; default: the
/// machine's cores), `gpus` (GPU indices handed out per node as `CUDA_VISIBLE_DEVICES`).
public actor LocalExecutor: Executor {
    /// `$TERN_HOME`, for the default root.
    let home: String
    /// Attempt directories known to have ended on every node, skipped when counting slots.
    private var finished: Set<String> = []

    public init(home: String) {
        self.home = home
    }

    /// The directory the target keeps its attempts under.
    public nonisolated func root(of target: TargetDefinition) -> String {
        if case .string(let root)? = target.settings["root"], !root.isEmpty {
            return root.hasPrefix("/") ? root : home + "/" + root
        }
        return home + "/local/" + target.name
    }

    public nonisolated func directory(key: String, target: TargetDefinition) -> AttemptDirectory {
        AttemptDirectory(path: root(of: target) + "/attempts/" + key)
    }

    // MARK: Launch

    public func launch(_ request: LaunchRequest) async throws -> String {
        let target = request.target
        let directory = directory(key: request.plan.key, target: target)
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: directory.launchedFile) { return directory.path }

        var plan: AttemptPlan
        if let existing = try? directory.readPlan() {
            // A launch that was cut off: keep its port and devices, start the nodes that never started.
            plan = existing
        } else {
            plan = request.plan
            plan.nodeDevices = try assignDevices(plan: plan, target: target)
            try checkSlots(nodes: plan.nodes, target: target)
            try fileManager.createDirectory(atPath: root(of: target) + "/attempts", withIntermediateDirectories: true)
            guard mkdir(directory.path, 0o755) == 0 || errno == EEXIST else {
                throw ExecutorError(.refused, "cannot make the attempt directory \(directory.path): \(String(cString: strerror(errno)))")
            }
            plan.masterAddress = "127.0.0.1"
            plan.masterPort = try Self.freePort()
            plan.nodeAddresses = Array(repeating: "127.0.0.1", count: plan.nodes)
            try directory.writePlan(plan)
        }

        let environment = Self.agentEnvironment(private: request.privateEnvironment)
        for node in 0..<plan.nodes {
            if fileManager.fileExists(atPath: directory.pidFile(node: node)) || directory.result(node: node) != nil { continue }
            let pid = try ProcessControl.spawn(
                request.agentProgram, ["agent", "--attempt-dir", directory.path, "--node-rank", String(node)],
                environment: environment, outputPath: directory.logFile(node: node), detach: .session)
            // Reap it while this process lives; afterwards it is init's (or a subreaper's) to reap.
            ProcessControl.reap(pid)
            let identity = ProcessIdentity(pid: pid, startTime: ProcessControl.startTime(of: pid))
            try AttemptDirectory.writeAtomically(Data(identity.text.utf8), to: directory.pidFile(node: node))
        }
        try AttemptDirectory.writeAtomically(Data("\(Date().timeIntervalSince1970)\n".utf8), to: directory.launchedFile)
        return directory.path
    }

    /// This process's environment without Tern's own variables (the agent sets the job's, and a
    /// scheduler's test hooks must not leak into it), plus the private values.
    static func agentEnvironment(private values: [String: String]) -> [String] {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TERN_") }
        for (key, value) in values { environment[key] = value }
        return environment.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// Refuses, as a capacity problem, an attempt that would run more node processes than `slots`.
    private func checkSlots(nodes: Int, target: TargetDefinition) throws {
        let slots: Int
        if case .integer(let value)? = target.settings["slots"] { slots = Int(value) } else { slots = ProcessInfo.processInfo.activeProcessorCount }
        if nodes > slots {
            throw ExecutorError(.refused, "\(target.name) runs at most \(slots) node processes at once (settings.slots); the job asks for \(nodes) nodes")
        }
        let busy = liveAttempts(of: target).reduce(0) { $0 + $1.runningNodes }
        if busy + nodes > slots {
            throw ExecutorError(.capacity, "\(target.name) is running \(busy) of its \(slots) node slots; \(nodes) more do not fit now")
        }
    }

    /// Hands out the target's `gpus` to the attempt's nodes, from those no live attempt holds.
    private func assignDevices(plan: AttemptPlan, target: TargetDefinition) throws -> [[String]]? {
        guard plan.gpusPerNode > 0, case .array(let listed)? = target.settings["gpus"] else { return nil }
        let all = listed.compactMap { value -> String? in
            switch value {
            case .string(let text): text
            case .integer(let number): String(number)
            default: nil
            }
        }
        let held = Set(liveAttempts(of: target).flatMap { $0.plan.nodeDevices?.flatMap { $0 } ?? [] })
        let free = all.filter { !held.contains($0) }
        let needed = plan.nodes * plan.gpusPerNode
        if needed > all.count {
            throw ExecutorError(.refused, "\(target.name) has \(all.count) GPUs (settings.gpus); the job asks for \(needed)")
        }
        guard free.count >= needed else {
            throw ExecutorError(.capacity, "\(target.name) has \(free.count) free GPUs of \(all.count); the job needs \(needed)")
        }
        return (0..<plan.nodes).map { node in Array(free[(node * plan.gpusPerNode)..<((node + 1) * plan.gpusPerNode)]) }
    }

    private struct LiveAttempt {
        var plan: AttemptPlan
        /// Slots it holds: every node, started or about to be.
        var runningNodes: Int { plan.nodes }
    }

    /// Attempts of the target with at least one node that has not ended.
    private func liveAttempts(of target: TargetDefinition) -> [LiveAttempt] {
        let attempts = root(of: target) + "/attempts"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: attempts)) ?? []
        var live: [LiveAttempt] = []
        for name in names {
            let path = attempts + "/" + name
            if finished.contains(path) { continue }
            let directory = AttemptDirectory(path: path)
            guard let plan = try? directory.readPlan() else { continue }
            let nodes = (0..<plan.nodes).map { nodeState(directory, node: $0) }
            let ended = nodes.allSatisfy { node in
                switch node {
                case .ended, .vanished: true
                case .notStarted, .running: false
                }
            }
            if ended { finished.insert(path) } else { live.append(LiveAttempt(plan: plan)) }
        }
        return live
    }

    // MARK: Status

    enum NodeState {
        case notStarted
        case running(ProcessIdentity)
        case ended(NodeResult, at: Date)
        /// The agent is gone without a result: killed, or the machine rebooted.
        case vanished
    }

    nonisolated func nodeState(_ directory: AttemptDirectory, node: Int) -> NodeState {
        if let result = directory.result(node: node) {
            let modified = (try? FileManager.default.attributesOfItem(atPath: directory.resultFile(node: node))[.modificationDate] as? Date) ?? nil
            return .ended(result, at: modified ?? .distantPast)
        }
        guard let text = try? String(contentsOfFile: directory.pidFile(node: node), encoding: .utf8),
              let identity = ProcessIdentity(text: text) else { return .notStarted }
        if identity.isRunning { return .running(identity) }
        // It may have written its result between the two reads.
        if let result = directory.result(node: node) { return .ended(result, at: Date()) }
        return .vanished
    }

    public func status(of attempts: [AttemptHandle]) async throws -> [String: ExecutorStatus] {
        var statuses: [String: ExecutorStatus] = [:]
        for attempt in attempts {
            statuses[attempt.key] = status(of: attempt)
        }
        return statuses
    }

    private func status(of attempt: AttemptHandle) -> ExecutorStatus {
        let directory = attempt.externalID.map(AttemptDirectory.init(path:)) ?? directory(key: attempt.key, target: attempt.target)
        guard let plan = try? directory.readPlan() else { return .notFound }
        let launched = FileManager.default.fileExists(atPath: directory.launchedFile)
        let nodes = (0..<plan.nodes).map { nodeState(directory, node: $0) }

        var live: [ProcessIdentity] = []
        var failures: [(Date, ExecutorStatus)] = []
        for (rank, node) in nodes.enumerated() {
            switch node {
            case .running(let identity): live.append(identity)
            case .notStarted:
                // A launch cut off before this node started is finished by the next launch call.
                if launched { failures.append((.distantFuture, .nodeLost(message: "node \(rank) never started"))) } else { return .queued }
            case .vanished: failures.append((.distantFuture, .nodeLost(message: "the agent of node \(rank) is gone without reporting an end")))
            case .ended(let result, let at):
                if let failure = Self.failure(result, rank: rank) { failures.append((at, failure)) }
            }
        }
        if !live.isEmpty {
            // Gang semantics: once one node has failed, the others are stopped too.
            if !failures.isEmpty { for identity in live { ProcessControl.signalProcess(identity.pid, SIGTERM) } }
            return .running
        }
        if directory.isPreempted { return .preempted }
        if FileManager.default.fileExists(atPath: directory.stopRequestFile) { return .stopped }
        // The earliest failure is the cause; the others are nodes stopped because of it.
        if let first = failures.min(by: { $0.0 < $1.0 }) { return first.1 }
        return .exited(code: 0)
    }

    static func failure(_ result: NodeResult, rank: Int) -> ExecutorStatus? {
        switch result.phase {
        case .run: result.exitCode == 0 ? nil : .exited(code: result.exitCode)
        case .setup: .setupFailed(code: result.exitCode)
        case .restore: .restoreFailed(message: result.message ?? "node \(rank) could not restore the checkpoint")
        case .leaseLost: .leaseLost
        case .agent: .launchFailed(.error, message: result.message ?? "the agent of node \(rank) failed")
        }
    }

    // MARK: Stop, preempt, find, logs

    public func stop(_ attempt: AttemptHandle, grace: Duration) async throws {
        let directory = attempt.externalID.map(AttemptDirectory.init(path:)) ?? directory(key: attempt.key, target: attempt.target)
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        if let since = directory.stopRequestedAt() {
            // Asked before: the agents have their SIGTERM; only the end of the grace period adds anything.
            if Date().timeIntervalSince(since) > grace.secondsValue + 5 { signalNodes(directory, force: true) }
            return
        }
        try directory.requestStop(grace: grace.secondsValue)
        // No grace (`tern migrate --now`): no checkpoint is asked for, the attempt is ended now.
        signalNodes(directory, force: grace <= .zero)
    }

    /// Takes the attempt's capacity back the way a cloud reclaims a spot instance: a notice (the
    /// agents get SIGTERM and ask the job for a checkpoint), then the end. The attempt then reports
    /// ``ExecutorStatus/preempted``. For tests and `tern demo`; a real cloud does this on its own.
    /// - Parameter notice: false takes the capacity back with no warning (SIGKILL to everything at
    ///   once), as when a node simply disappears: no last checkpoint is written.
    public func preempt(_ attempt: AttemptHandle, notice: Bool = true) throws {
        let directory = attempt.externalID.map(AttemptDirectory.init(path:)) ?? directory(key: attempt.key, target: attempt.target)
        try directory.markPreempted()
        signalNodes(directory, force: !notice)
    }

    /// SIGTERM to every live agent, or with `force` SIGKILL to the agents' and the jobs' process groups.
    private func signalNodes(_ directory: AttemptDirectory, force: Bool) {
        guard let plan = try? directory.readPlan() else { return }
        for node in 0..<plan.nodes {
            guard case .running(let identity) = nodeState(directory, node: node) else { continue }
            if force {
                if let text = try? String(contentsOfFile: directory.jobGroupFile(node: node), encoding: .utf8),
                   let group = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    ProcessControl.signalGroup(group, SIGKILL)
                }
                // The agent leads its own session, so its process group is its pid.
                ProcessControl.signalGroup(identity.pid, SIGKILL)
            } else {
                ProcessControl.signalProcess(identity.pid, SIGTERM)
            }
        }
    }

    public func find(key: String, target: TargetDefinition) async throws -> String? {
        let directory = directory(key: key, target: target)
        return FileManager.default.fileExists(atPath: directory.planFile) ? directory.path : nil
    }

    public nonisolated func logFile(_ attempt: AttemptHandle, node: Int) -> String? {
        (attempt.externalID.map(AttemptDirectory.init(path:)) ?? directory(key: attempt.key, target: attempt.target)).logFile(node: node)
    }

    /// A TCP port free on the loopback now, for the job's rendezvous (rank 0 binds it).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ExecutorError(.transient, "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ExecutorError(.transient, "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var secondsValue: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
