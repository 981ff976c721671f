public import Foundation
import Glibc
public import TernModel

/// Runs attempts on a Slurm cluster with its commands: `sbatch --parsable` (the attempt's key as
/// the job name), `squeue --json`, `scancel`. The batch script runs `srun tern agent` once per
/// node; each agent takes its rank and the rendezvous address from Slurm's environment
/// (`SLURM_NODEID`, `SLURM_JOB_NODELIST`).
///
/// The attempt's directory (`<root>/attempts/<key>`, root from the target's `root` setting or
/// `$TERN_HOME/slurm/<target>`) must be on a file system every node mounts: the plan, the node
/// logs and the agents' result files are there. Launching is idempotent by the key: a job already
/// submitted under that name (found with `squeue --name`, or recorded in the directory) is adopted
/// instead of submitted again.
///
/// Settings: `partition`, `account`, `qos`, `sbatch_args`, `root`.
public actor SlurmExecutor: Executor {
    let home: String
    /// `sbatch`, `squeue`, `scancel` are looked up on PATH unless given here (tests point at a
    /// cluster's own binaries and configuration through the environment instead).
    let environment: [String: String]

    public init(home: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.home = home
        self.environment = environment
    }

    public nonisolated func directory(key: String, target: TargetDefinition) -> AttemptDirectory {
        let root: String
        if case .string(let configured)? = target.settings["root"], !configured.isEmpty {
            root = configured.hasPrefix("/") ? configured : home + "/" + configured
        } else {
            root = home + "/slurm/" + target.name
        }
        return AttemptDirectory(path: root + "/attempts/" + key)
    }

    // MARK: Launch

    public func launch(_ request: LaunchRequest) async throws -> String {
        let target = request.target
        let plan = request.plan
        let directory = directory(key: plan.key, target: target)
        let submittedFile = directory.path + "/slurm-job-id"
        if let recorded = try? String(contentsOfFile: submittedFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !recorded.isEmpty {
            return recorded
        }
        if let existing = try await find(key: plan.key, target: target) {
            try AttemptDirectory.writeAtomically(Data("\(existing)\n".utf8), to: submittedFile)
            return existing
        }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        try directory.writePlan(plan)
        let script = directory.path + "/batch.sh"
        let body = """
            #!/bin/sh
            # Written by Tern for attempt \(plan.attemptNumber) of job \(plan.jobName) (\(plan.jobID.uuidString.lowercased())).
            # One agent per node; each writes its own log beside this script.
            exec srun --kill-on-bad-exit=1 --ntasks-per-node=1 --output=\(Self.shellQuoted(directory.path + "/node-%n.log")) \
              \(Self.shellQuoted(request.agentProgram)) agent --attempt-dir \(Self.shellQuoted(directory.path))

            """
        try AttemptDirectory.writeAtomically(Data(body.utf8), to: script)
        chmod(script, 0o755)

        var arguments = ["--parsable", "--job-name=\(plan.key)", "--nodes=\(plan.nodes)", "--ntasks-per-node=1",
                         "--output=\(directory.path)/slurm-%j.out", "--chdir=\(plan.workdir)", "--export=ALL"]
        if plan.gpusPerNode > 0 { arguments.append("--gres=gpu:\(plan.gpusPerNode)") }
        if let limit = request.timeLimit { arguments.append("--time=\(max(1, (limit.seconds + 59) / 60))") }
        for setting in ["partition", "account", "qos"] {
            if case .string(let value)? = target.settings[setting], !value.isEmpty { arguments.append("--\(setting)=\(value)") }
        }
        if case .array(let extra)? = target.settings["sbatch_args"] {
            for case .string(let argument) in extra { arguments.append(argument) }
        }
        arguments.append(script)

        var childEnvironment = environment.filter { !$0.key.hasPrefix("TERN_") }
        for (key, value) in request.privateEnvironment { childEnvironment[key] = value }
        let result = try await SlurmCommand.run("sbatch", arguments, environment: childEnvironment)
        guard result.status == 0 else {
            let text = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let capacity = ["Requested node configuration is not available", "QOSMax", "AssocMax", "Resources"].contains { text.contains($0) }
            throw ExecutorError(capacity ? .capacity : .refused, "sbatch on \(target.name) failed (exit \(result.status)): \(text.prefix(400))")
        }
        guard let id = result.output.split(whereSeparator: \.isNewline).last?.split(separator: ";").first.map(String.init),
              Int(id) != nil else {
            throw ExecutorError(.transient, "sbatch on \(target.name) printed no job id: \(result.output.prefix(200))")
        }
        try AttemptDirectory.writeAtomically(Data("\(id)\n".utf8), to: submittedFile)
        return id
    }

    public func find(key: String, target: TargetDefinition) async throws -> String? {
        let jobs = try await queue(names: [key])
        return jobs.first { $0.name == key }.map { String($0.id) }
    }

    // MARK: Status

    struct QueuedJob {
        var id: Int
        var name: String
        var state: String
    }

    /// Jobs from `squeue --json` (every state Slurm still remembers), optionally by name.
    func queue(names: [String] = []) async throws -> [QueuedJob] {
        var arguments = ["--json", "--states=all"]
        if !names.isEmpty { arguments.append("--name=\(names.joined(separator: ","))") }
        let result = try await SlurmCommand.run("squeue", arguments, environment: environment)
        guard result.status == 0 else {
            throw ExecutorError(.transient, "squeue failed (exit \(result.status)): \(result.output.prefix(300))")
        }
        return try Self.parseQueue(result.output)
    }

    /// Reads `squeue --json` (Slurm 22.05 to 24.x: `job_state` is a string or a list of strings).
    static func parseQueue(_ text: String) throws -> [QueuedJob] {
        guard let start = text.firstIndex(of: "{"),
              let object = try? JSONSerialization.jsonObject(with: Data(text[start...].utf8)) as? [String: Any],
              let jobs = object["jobs"] as? [[String: Any]] else {
            throw ExecutorError(.transient, "squeue --json printed something that is not its JSON: \(text.prefix(200))")
        }
        return jobs.compactMap { job in
            guard let id = (job["job_id"] as? NSNumber)?.intValue else { return nil }
            let state: String
            if let text = job["job_state"] as? String { state = text } else if let list = job["job_state"] as? [String] { state = list.first ?? "" } else { state = "" }
            return QueuedJob(id: id, name: job["name"] as? String ?? "", state: state)
        }
    }

    public func status(of attempts: [AttemptHandle]) async throws -> [String: ExecutorStatus] {
        if attempts.isEmpty { return [:] }
        let jobs = try await queue(names: attempts.map(\.key))
        var byName: [String: QueuedJob] = [:]
        for job in jobs { if byName[job.name].map({ $0.id < job.id }) ?? true { byName[job.name] = job } }
        var statuses: [String: ExecutorStatus] = [:]
        for attempt in attempts {
            let directory = directory(key: attempt.key, target: attempt.target)
            statuses[attempt.key] = Self.status(slurm: byName[attempt.key], directory: directory, nodes: attempt.nodes)
        }
        return statuses
    }

    static func status(slurm job: QueuedJob?, directory: AttemptDirectory, nodes: Int) -> ExecutorStatus {
        let stopped = FileManager.default.fileExists(atPath: directory.stopRequestFile)
        switch job?.state {
        case "PENDING", "CONFIGURING", "REQUEUED", "RESV_DEL_HOLD", "SUSPENDED":
            return .queued
        case "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING":
            return .running
        case "PREEMPTED":
            return .preempted
        case "NODE_FAIL", "BOOT_FAIL":
            return stopped ? .stopped : .nodeLost(message: "Slurm reports \(job!.state)")
        case nil:
            // Slurm forgot the job (MinJobAge passed) or never had it: the agents' results decide.
            if !FileManager.default.fileExists(atPath: directory.planFile) { return .notFound }
            fallthrough
        default:
            if stopped { return .stopped }
            var failures: [(Date, ExecutorStatus)] = []
            for rank in 0..<nodes {
                guard let result = directory.result(node: rank) else {
                    failures.append((.distantFuture, .nodeLost(message: "node \(rank) ended without its agent reporting (Slurm: \(job?.state ?? "unknown"))")))
                    continue
                }
                let modified = (try? FileManager.default.attributesOfItem(atPath: directory.resultFile(node: rank))[.modificationDate] as? Date) ?? nil
                if let failure = LocalExecutor.failure(result, rank: rank) { failures.append((modified ?? .distantPast, failure)) }
            }
            if job?.state == "CANCELLED", failures.isEmpty == false, !stopped {
                return .nodeLost(message: "Slurm cancelled the job outside Tern")
            }
            return failures.min(by: { $0.0 < $1.0 })?.1 ?? .exited(code: 0)
        }
    }

    // MARK: Stop and logs

    public func stop(_ attempt: AttemptHandle, grace: Duration) async throws {
        let directory = directory(key: attempt.key, target: attempt.target)
        let recorded = try? String(contentsOfFile: directory.path + "/slurm-job-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var found = attempt.externalID ?? recorded
        if found == nil { found = try await find(key: attempt.key, target: attempt.target) }
        guard let id = found else { return }
        if FileManager.default.fileExists(atPath: directory.path) { try directory.requestStop(grace: grace.secondsValue) }
        let since = directory.stopRequestedAt() ?? Date()
        let queued = try await queue(names: [attempt.key]).first { String($0.id) == id }
        // Nothing runs yet, or the grace is over: end it now. Otherwise the agents get SIGTERM and
        // ask the job for a checkpoint.
        let hard = queued?.state == "PENDING" || grace <= .zero || Date().timeIntervalSince(since) > grace.secondsValue + 5
        let arguments = hard ? [id] : ["--signal=TERM", id]
        let result = try await SlurmCommand.run("scancel", arguments, environment: environment)
        if result.status != 0 && !result.output.contains("already completing or completed") && !result.output.contains("Invalid job id") {
            throw ExecutorError(.transient, "scancel \(arguments.joined(separator: " ")) failed (exit \(result.status)): \(result.output.prefix(300))")
        }
    }

    public nonisolated func logFile(_ attempt: AttemptHandle, node: Int) -> String? {
        directory(key: attempt.key, target: attempt.target).logFile(node: node)
    }

    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// Runs a Slurm command and captures what it prints.
enum SlurmCommand {
    struct Output {
        var status: Int32
        var output: String
    }

    static func run(_ program: String, _ arguments: [String], environment: [String: String]) async throws -> Output {
        guard let path = resolve(program, path: environment["PATH"] ?? "/usr/bin:/bin") else {
            throw ExecutorError(.refused, "\(program) is not installed here (Debian: apt-get install slurm-client)")
        }
        let capture = NSTemporaryDirectory() + "tern-slurm-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(capture) }
        let pid = try ProcessControl.spawn(path, arguments, environment: environment.map { "\($0.key)=\($0.value)" }, outputPath: capture, detach: .none)
        let status = await ProcessControl.wait(pid)
        return Output(status: status, output: (try? String(contentsOfFile: capture, encoding: .utf8)) ?? "")
    }

    static func resolve(_ program: String, path: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for directory in path.split(separator: ":") where access("\(directory)/\(program)", X_OK) == 0 {
            return "\(directory)/\(program)"
        }
        return nil
    }
}
