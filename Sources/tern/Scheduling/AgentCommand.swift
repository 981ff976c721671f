import ArgumentParser
import Foundation
import TernAgent
import TernExecutors

/// `tern agent`: what every node of an attempt runs (executors start it; people rarely do).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run one node of an attempt: restore, setup, run, seal and commit checkpoints, heartbeat.",
        discussion: """
            Executors start this on every node with the attempt's directory, which holds the plan \
            (attempt.json) the scheduler wrote. It restores TERN_RESUME_FROM from the target's store \
            (checking every chunk), runs the spec's setup and run commands with the rank environment, \
            seals each newly complete step directory and commits it on the target's store (rank 0), \
            heartbeats the attempt, and on SIGTERM asks the job for a checkpoint (SIGUSR1) before \
            stopping it. It needs TERN_DATABASE_URL in its environment. It exits with the job's \
            status and writes node-<rank>.result in the attempt directory. See docs/scheduler.md.
            """)

    @Option(name: .customLong("attempt-dir"), help: ArgumentHelp("The attempt's directory (holding attempt.json).", valueName: "dir"))
    var attemptDirectory: String

    @Option(name: .customLong("node-rank"), help: ArgumentHelp("This node's rank. Default: $SLURM_NODEID, else 0.", valueName: "n"))
    var nodeRank: Int?

    func validate() throws {
        if let nodeRank, nodeRank < 0 { throw ValidationError("--node-rank must be 0 or more") }
    }

    func run() async throws {
        let code = await NodeAgent(directory: AttemptDirectory(path: attemptDirectory), rank: nodeRank).run()
        if code != 0 { throw ExitCode(code) }
    }
}
