public import Foundation
import Glibc

/// The directory one attempt lives in, shared by its nodes (local disk for the local executor, the
/// cluster's shared file system for Slurm), and the files in it that the executor and the agents
/// exchange. Files, not a socket: a scheduler that restarts, or another replica, reads the same
/// truth back.
///
/// ```
/// <dir>/attempt.json        the AttemptPlan, written before any node starts
/// <dir>/node-<r>.log        node r's output: the job's stdout and stderr, and `tern-agent:` lines
/// <dir>/node-<r>.pid        the agent's pid and kernel start time (local executor)
/// <dir>/node-<r>.job        the process group of node r's job (for a last-resort kill)
/// <dir>/node-<r>.result     how node r ended (NodeResult as JSON), written last by its agent
/// <dir>/stop-requested      Tern asked the attempt to stop (its first line: when, Unix seconds)
/// <dir>/preempted           the capacity was taken back (a local stand-in for a cloud's notice)
/// <dir>/work/<checkpoint.dir>/   where the job writes step directories (TERN_CHECKPOINT_DIR)
/// <dir>/resume/             the restored checkpoint (TERN_RESUME_FROM)
/// ```
public struct AttemptDirectory: Sendable, Hashable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var planFile: String { path + "/attempt.json" }
    public func logFile(node: Int) -> String { path + "/node-\(node).log" }
    public func pidFile(node: Int) -> String { path + "/node-\(node).pid" }
    public func jobGroupFile(node: Int) -> String { path + "/node-\(node).job" }
    public func resultFile(node: Int) -> String { path + "/node-\(node).result" }
    public var stopRequestFile: String { path + "/stop-requested" }
    public var preemptionFile: String { path + "/preempted" }
    public var launchedFile: String { path + "/launched" }
    public var resumeDirectory: String { path + "/resume" }
    /// Written by rank 0 once the resume checkpoint is restored, so the other ranks can start.
    public var restoredFile: String { path + "/resume.done" }
    public func checkpointDirectory(_ relative: String) -> String { path + "/work/" + relative }

    // MARK: Reading and writing

    public func writePlan(_ plan: AttemptPlan) throws {
        try Self.writeAtomically(try Self.encoder.encode(plan), to: planFile)
    }

    public func readPlan() throws -> AttemptPlan {
        let data = try Data(contentsOf: URL(fileURLWithPath: planFile))
        return try JSONDecoder().decode(AttemptPlan.self, from: data)
    }

    public func writeResult(_ result: NodeResult, node: Int) throws {
        try Self.writeAtomically(try Self.encoder.encode(result), to: resultFile(node: node))
    }

    /// Node `node`'s result, or nil when it has written none (yet).
    public func result(node: Int) -> NodeResult? {
        guard let data = FileManager.default.contents(atPath: resultFile(node: node)) else { return nil }
        return try? JSONDecoder().decode(NodeResult.self, from: data)
    }

    /// When Tern first asked the attempt to stop, or nil.
    public func stopRequestedAt() -> Date? {
        guard let text = try? String(contentsOfFile: stopRequestFile, encoding: .utf8),
              let seconds = Double(text.split(separator: "\n").first ?? "") else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }

    /// Records the first stop request and its grace period in seconds; later ones keep the first
    /// (the grace period counts from it).
    public func requestStop(now: Date = Date(), grace: Double? = nil) throws {
        if FileManager.default.fileExists(atPath: stopRequestFile) { return }
        let text = "\(now.timeIntervalSince1970)\n" + (grace.map { "\($0)\n" } ?? "")
        try Self.writeAtomically(Data(text.utf8), to: stopRequestFile)
    }

    /// The grace period the stop request asked for (`tern migrate --graceful D`, 0 for `--now`), or nil.
    public func stopGrace() -> Double? {
        guard let text = try? String(contentsOfFile: stopRequestFile, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n")
        return lines.count > 1 ? Double(lines[1]) : nil
    }

    public var isPreempted: Bool { FileManager.default.fileExists(atPath: preemptionFile) }

    public func markPreempted() throws {
        try Self.writeAtomically(Data("preempted\n".utf8), to: preemptionFile)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return encoder
    }()

    /// Temp file, fsync, rename: a reader sees the old file or the whole new one, never half.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExecutorError(.refused, "cannot write \(path): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { buffer in write(fd, buffer.baseAddress, buffer.count) }
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ExecutorError(.refused, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// How one node's agent ended, written to `node-<r>.result` as its last act.
public struct NodeResult: Sendable, Hashable, Codable {
    public enum Phase: String, Sendable, Hashable, Codable {
        /// Restoring the resume checkpoint failed; the job never started.
        case restore
        /// `setup` exited non-zero.
        case setup
        /// `run` ended (with any code).
        case run
        /// The attempt was no longer live in the database, so the agent stopped the job.
        case leaseLost = "lease_lost"
        /// The agent itself could not work (bad plan, no database at start).
        case agent
    }

    public var phase: Phase
    /// The command's exit status (128 + N when a signal ended it).
    public var exitCode: Int32
    public var message: String?

    public init(phase: Phase, exitCode: Int32, message: String? = nil) {
        self.phase = phase
        self.exitCode = exitCode
        self.message = message
    }
}
